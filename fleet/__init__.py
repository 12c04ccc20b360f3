"""Fleet processing: many files through the stream pipeline on Ray workers (``driving-detect batch``).

Ray is imported only inside `fleet.batch`'s functions, so the rest of the project imports without the ``fleet``
extra; `fleet.worker` is plain Python that Ray wraps into an actor.
"""

"""An RTSP server that serves both TCP and UDP (GStreamer's gst-rtsp-server), streaming a test pattern.

Run with the system Python, which has Debian's GObject bindings (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``):
``/usr/bin/python3 bench/gst_rtsp_server.py PORT PATH``. It listens on 127.0.0.1 only, until killed.
`bench.rtsp_server.GstRtspServer` starts and stops it; rtsp-server-perl there serves UDP only.
"""
import sys

PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph264pay name=pay0 pt=96 )")


def main(port: str, path: str) -> None:
    import gi  # Debian's bindings, in the system Python only: imported here so the module imports anywhere

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)  # the default transports: UDP, UDP multicast and TCP
    server.get_mount_points().add_factory(f"/{path}", factory)
    server.attach(None)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Runs inside the test's bubblewrap sandbox (its own network namespace): listens on 127.0.0.1 ports as the
sandbox's loopback, relays each connection to a unix socket the host side relays on to the gateway (what
pasta's port mapping does for the real sandbox), then runs the app and exits with its status. Stdlib only
(python -S).

usage: netns_relay.py SOCKDIR PORT[,PORT...] -- APP ARGS...   (SOCKDIR/PORT.sock for each PORT)
"""

import os
import socket
import subprocess
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(listener, path):
    while True:
        conn, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(path)
        threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()


def main():
    sockdir, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
    app = sys.argv[sys.argv.index("--") + 1:]
    for port in ports:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        threading.Thread(target=serve, args=(listener, os.path.join(sockdir, f"{port}.sock")),
                         daemon=True).start()
    sys.exit(subprocess.call(app, env=dict(os.environ)))


if __name__ == "__main__":
    main()

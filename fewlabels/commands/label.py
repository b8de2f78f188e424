"""``fewlabels label``: the labeling loop in a browser page (suggest, label, train, check, repeat), served locally."""

from __future__ import annotations

import argparse

from fewlabels.commands.common import add_seed, whole_number

NAME = "label"
HELP = "serve a local page to label an image folder: suggest's picks one at a time, train, review suspects, repeat"
DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Needs the extra: pip install 'fewlabels[app]'.")
    p.add_argument("dataset", metavar="DATASET", help="an image folder: class subfolders + unlabeled/ (.npz may come "
                   "later)")
    p.add_argument("--from", dest="run_dir", metavar="RUN_DIR", help="a run on this folder whose features and "
                   "predictions choose the first picks (default: a cold start, or the page's last finished round)")
    p.add_argument("--port", type=whole_number((0, 65535)), default=DEFAULT_PORT, metavar="N",
                   help=f"the port to serve on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="HOST",
                   help="the address to serve on (default 127.0.0.1, this machine only; another one warns who can "
                   "reach the page)")
    p.add_argument("--budget", type=whole_number("num_labels"), default=20, metavar="N",
                   help="picks per round (default 20)")
    add_seed(p, "seed of suggest's clustering and check-labels' folds")
    p.add_argument("--check", action="store_true", help="check the folder, --from, the port and the lock, say what "
                   "would be served, and exit without serving (for scripts and tests)")


def _bind(host: str, port: int):
    """A listening socket on host:port, or one sentence (a port in use, an address that is not this machine's)."""
    import errno
    import socket

    from fewlabels.errors import FewLabelsError

    if not host or any(ch.isspace() for ch in host):
        raise FewLabelsError(f"--host '{host}' is not an address; give one such as 127.0.0.1.")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, ValueError):
        raise FewLabelsError(f"--host {host} is not an address of this machine; give one such as 127.0.0.1.") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise FewLabelsError(f"port {port} on {host} is in use (another server?); give another --port, or --port 0 "
                                 "for any free one.") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise FewLabelsError(f"port {port} needs privileges this user lacks; give a --port above 1023.") from None
        raise FewLabelsError(f"cannot serve on {host}:{port} ({exc.strerror}); give another --host or --port.") from None
    return sock


def run(args: argparse.Namespace) -> int:
    import secrets
    import sys

    from fewlabels.app import require_web

    require_web()  # before any work: the hint, not a traceback
    import uvicorn

    from fewlabels.app.checks import check_dataset
    from fewlabels.app.server import create_app
    from fewlabels.app.session import LabelSession
    from fewlabels.commands.common import load_run
    from fewlabels.errors import FewLabelsError

    if not args.dataset:
        raise FewLabelsError("DATASET is empty; give the image folder to label (class folders + unlabeled/).")
    check_dataset(args.dataset)
    if args.run_dir is not None:
        if not args.run_dir:
            raise FewLabelsError("--from is empty; give a run folder, or leave --from out for a cold start.")
        load_run(args.run_dir)  # a wrong --from is refused now, not in the page
    sock = _bind(args.host, args.port)
    try:
        session = LabelSession(args.dataset, args.run_dir, args.budget, args.seed).open(picks=not args.check)
    except BaseException:
        sock.close()
        raise
    try:
        host, port = sock.getsockname()[:2]
        token = secrets.token_urlsafe(24)
        shown = f"[{host}]" if ":" in host else host
        if args.host not in LOOPBACK:
            print(f"fewlabels: warning: --host {args.host} serves the page beyond this machine: anyone who can reach "
                  f"{args.host}:{port} and has the URL's token can label and move the files of {args.dataset}.",
                  file=sys.stderr)
        if args.check:
            print(f"{args.dataset} can be labeled; fewlabels label would serve it on {shown}:{port}")
            return 0
        print(f"labeling {args.dataset}: open http://{shown}:{port}/?token={token}", flush=True)
        print("Ctrl-C stops the server; labels are on disk as they are given.", flush=True)
        config = uvicorn.Config(create_app(session, token), log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        session.close()
        sock.close()
    return 0

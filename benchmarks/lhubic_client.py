"""Run one lhubic transfer in its own process, as bench.py measures it.

The connection reads the application from ``HUBIC_CLIENT_ID``,
``HUBIC_CLIENT_SECRET`` and ``HUBIC_API_URL``, and its tokens from the token
store file given with ``--token-store``, which bench.py filled after logging
in once. So the measured process sends storage requests only, as the peers
do with their storage URL and token.
"""

from __future__ import annotations

import argparse
import sys

from lhubic import FileStatus, Hubic, download_tree, iter_objects, upload_tree


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token-store", required=True, help="token store file")
    parser.add_argument(
        "--workers",
        type=int,
        help="files moved at once by the tree commands (default: lhubic's own)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload-file", help="upload one file")
    upload.add_argument("container")
    upload.add_argument("name")
    upload.add_argument("path")

    download = commands.add_parser("download-file", help="download one object")
    download.add_argument("container")
    download.add_argument("name")
    download.add_argument("path")

    upload_dir = commands.add_parser("upload-tree", help="upload a folder")
    upload_dir.add_argument("path")
    upload_dir.add_argument("container")
    upload_dir.add_argument("--prefix", default="")

    download_dir = commands.add_parser("download-tree", help="download objects")
    download_dir.add_argument("container")
    download_dir.add_argument("path")
    download_dir.add_argument("--prefix", default="")

    listing = commands.add_parser("list", help="print every object name")
    listing.add_argument("container")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the transfer named on the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    hubic = Hubic(token_store=args.token_store)
    if args.workers is not None:
        hubic.transfer_workers = args.workers

    if args.command == "upload-file":
        hubic.upload_file(args.container, args.name, args.path)
    elif args.command == "download-file":
        hubic.download_file(args.container, args.name, args.path)
    elif args.command in ("upload-tree", "download-tree"):
        if args.command == "upload-tree":
            results = upload_tree(hubic, args.path, args.container, prefix=args.prefix)
        else:
            results = download_tree(
                hubic, args.container, args.path, prefix=args.prefix
            )
        failed = [result for result in results if result.status is FileStatus.FAILED]
        for result in failed:
            print(f"failed: {result.name}: {result.error}", file=sys.stderr)
        if failed:
            return 1
    else:
        output = sys.stdout
        for entry in iter_objects(hubic, args.container):
            output.write(entry["name"] + "\n")

    hubic.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calibrate a camera from chessboard images, a video, or an image topic of a rosbag2 bag (camera_info YAML).

Finds the board in every image (every ``--every``-th frame of a video or bag), keeps sharp views spread over the
image without near-duplicates, calibrates with OpenCV and writes the ROS camera_calibration YAML to ``--out``. The
report folder (``--report-dir``, default ``runs/calibrate/<name>``) gets ``result.json`` (RMS and per-view
reprojection errors, coverage, why each dropped view was dropped, the arguments), ``corners.jpg`` and
``undistorted.jpg``. ``--topic T --bag DIR`` reads a recorded bag without ROS; ``--topic T`` alone reads the live
topic for ``--duration`` seconds through a small rclpy helper of the node package (``dualstream_perception.
topic_frames``), imported only then, so this module and the core stay ROS-free.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger("perception.commands.calibrate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="folder of calibration images")
    src.add_argument("--video", metavar="V", help="video file")
    src.add_argument("--topic", metavar="T", help="image topic: live (needs ROS 2) or, with --bag, of a recording")
    parser.add_argument("--duration", type=float, default=30.0, metavar="S",
                        help="live --topic: read for S seconds (default 30)")
    parser.add_argument("--pattern", default="*", metavar="GLOB",
                        help="--images: which files, e.g. 'left*.jpg' (default all images)")
    parser.add_argument("--bag", metavar="DIR", help="rosbag2 folder (or .mcap/.db3 file) for --topic")
    parser.add_argument("--board", default="9x6", help="inner corners, COLSxROWS (default 9x6)")
    parser.add_argument("--square", type=float, default=0.025, help="square size in metres (default 0.025)")
    parser.add_argument("--model", choices=("pinhole", "fisheye"), default="pinhole",
                        help="pinhole (plumb_bob distortion) or fisheye (equidistant); default pinhole")
    parser.add_argument("--out", required=True, metavar="YAML", help="output file, e.g. calibration/NAME.yaml")
    parser.add_argument("--name", default=None, help="camera_name in the file (default: the --out file's stem)")
    parser.add_argument("--report-dir", default=None, metavar="DIR",
                        help="result.json and pictures (default runs/calibrate/<name>)")
    parser.add_argument("--every", type=int, default=None, metavar="N",
                        help="video/bag: look at every N-th frame (default 5; images: every image)")
    parser.add_argument("--max-views", type=int, default=40, help="most views used (default 40)")
    parser.add_argument("--max-blur", type=float, default=5.0, metavar="PX",
                        help="drop views whose board edges are wider than PX pixels (default 5)")
    parser.add_argument("--min-distance", type=float, default=0.01,
                        help="views whose corners moved less than this fraction of the image diagonal on average "
                             "are near-duplicates (default 0.01)")
    parser.add_argument("--alpha", type=float, default=0.0,
                        help="rectified image: 0 keeps only valid pixels, 1 keeps every source pixel (default 0)")


def _frames(args: argparse.Namespace) -> Iterator[tuple[str, np.ndarray]]:
    """(name, grey image) pairs from the chosen input."""
    import cv2  # noqa: PLC0415

    from perception.io.frame import SourceError  # noqa: PLC0415

    if args.images:
        from perception.io.folder import list_images  # noqa: PLC0415

        folder = Path(args.images)
        if not folder.is_dir():
            raise SourceError(f"--images {folder}: not a directory")
        files = list_images(folder, args.pattern)
        if not files:
            raise SourceError(f"--images {folder}: no image files matching '{args.pattern}'")
        for path in files[::args.every or 1]:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                log.warning("%s: cannot read as an image; skipped", path)
                continue
            yield path.name, image
        return
    if args.video:
        from perception.io.video import VideoFileSource  # noqa: PLC0415

        source = VideoFileSource(args.video)
    elif not args.bag:
        yield from _live_topic(args, cv2, SourceError)
        return
    else:
        from perception.io.bag import BagSource  # noqa: PLC0415

        source = BagSource(args.bag, topic=args.topic)
    try:
        for i, frame in enumerate(source):
            if i % (args.every or 5) == 0:
                yield f"frame{frame.seq:06d}", cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
    finally:
        source.close()


def _live_topic(args: argparse.Namespace, cv2, source_error: type[Exception]) -> Iterator[tuple[str, np.ndarray]]:
    try:
        from dualstream_perception.topic_frames import read_topic_frames  # noqa: PLC0415
    except ImportError as exc:
        raise source_error(f"--topic {args.topic}: reading a live topic needs ROS 2 (rclpy) and the "
                           f"dualstream_perception nodes ({exc}); or record it and pass --bag DIR") from None
    log.info("reading %s for %.0f s", args.topic, args.duration)
    for name, rgb in read_topic_frames(args.topic, args.duration, every=args.every or 5):
        yield name, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def run(args: argparse.Namespace) -> int:
    import cv2  # noqa: PLC0415

    from perception.geometry.camera_model import CalibrationError  # noqa: PLC0415

    try:
        return _calibrate(args, cv2)
    except CalibrationError as exc:
        print(f"dualstream calibrate: error: {exc}", file=sys.stderr)
        return 2


def _calibrate(args: argparse.Namespace, cv2) -> int:
    from perception.geometry.calibration import calibrate_views  # noqa: PLC0415
    from perception.geometry.camera_model import CalibrationError  # noqa: PLC0415
    from perception.geometry.camera_yaml import save_camera_yaml  # noqa: PLC0415
    from perception.geometry.chessboard import Chessboard, detect_board, larger_board_visible  # noqa: PLC0415
    from perception.geometry.pictures import corners_picture, undistorted_picture  # noqa: PLC0415
    from perception.geometry.rectify import Rectifier  # noqa: PLC0415
    from perception.geometry.view_selection import coverage, select_views  # noqa: PLC0415
    from perception.io.atomic import atomic_write_bytes, write_json  # noqa: PLC0415

    board = Chessboard.parse(args.board, args.square)
    out = Path(args.out)
    name = args.name or out.stem
    report = Path(args.report_dir or Path("runs/calibrate") / name)
    views, images, seen, missing = [], {}, 0, []
    for frame_name, gray in _frames(args):
        seen += 1
        view = detect_board(gray, board, frame_name)
        if view is None:
            missing.append(frame_name)
            continue
        views.append(view)
        images[frame_name] = gray
    if not views:
        raise CalibrationError(f"no {board} board found in any of {seen} image(s); --board counts INNER corners "
                               "(a board of 10x7 squares is 9x6)")
    warnings = []
    larger = larger_board_visible(images[views[0].name], board)
    if larger is not None:
        warnings.append(f"{views[0].name} also holds a {larger.cols}x{larger.rows} board: is --board {args.board} "
                        "right? (it counts inner corners; a sub-board calibrates too, but check)")
        log.warning(warnings[-1])
    selection = select_views(views, board, max_blur_px=args.max_blur, min_distance=args.min_distance,
                             max_views=args.max_views)
    result = calibrate_views(selection.kept, board, model=args.model, alpha=args.alpha, camera_name=name)
    save_camera_yaml(result.camera, out)
    report.mkdir(parents=True, exist_ok=True)
    first = selection.kept[0]
    rectifier = Rectifier(result.camera)
    for picture_name, picture in (
            ("corners.jpg", corners_picture(images[first.name], first, selection.kept, board)),
            ("undistorted.jpg", undistorted_picture(images[first.name], first, rectifier, board))):
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            atomic_write_bytes(report / picture_name, data.tobytes())
    cover = coverage(selection.kept, board)
    summary = {"calibration": str(out), "board": str(board), "model": args.model, "images_seen": seen,
               "boards_found": len(views), "views_used": [v.name for v in selection.kept],
               "no_board": missing, "rejected": selection.rejected, "warnings": warnings, "coverage": cover, **result.summary(),
               "arguments": {k: v for k, v in vars(args).items() if k != "handler"}}
    write_json(report / "result.json", summary)
    _print(summary, result, report)
    return 0


def _print(summary: dict, result, report: Path) -> None:
    worst = sorted(result.per_view_px.items(), key=lambda kv: -kv[1])[:3]
    print(f"dualstream calibrate: {summary['calibration']} ({summary['model']}, {summary['board']})")
    print(f"  views     {len(summary['views_used'])} used of {summary['boards_found']} with the board, "
          f"{summary['images_seen']} images seen")
    print(f"  RMS       {result.rms_px:.4f} px  (worst views: "
          f"{', '.join(f'{n} {e:.3f}' for n, e in worst)})")
    print(f"  K         fx {summary['fx']:.3f}  fy {summary['fy']:.3f}  cx {summary['cx']:.3f}  cy {summary['cy']:.3f}")
    print(f"  D         {summary['distortion_model']} {[round(v, 5) for v in summary['distortion']]}")
    print(f"  coverage  {summary['coverage']['cells_covered']:.0%} of an 8x6 grid; size span "
          f"{summary['coverage']['size_span']}, skew span {summary['coverage']['skew_span']}")
    print(f"  report    {report}/ (result.json, corners.jpg, undistorted.jpg)")

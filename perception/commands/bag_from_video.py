"""Make a rosbag2 bag from a video (and its MOT ground truth): image_raw and/or image_raw/compressed, camera_info,
ground_truth.

See ``perception.replay.from_video`` for the topics and stamps. Prints the written topics and their counts.
"""

from __future__ import annotations

import argparse
import sys

from perception.io.atomic import write_json
from perception.io.bag_writer import STORAGES
from perception.replay.from_video import TRANSPORTS, VideoBagSpec, bag_from_video


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, help="input video file")
    parser.add_argument("--gt", default="", help="MOTChallenge gt.txt of the video (written to <ns>/ground_truth)")
    parser.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="bag storage (mcap)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="raw",
                        help="raw: image_raw (rgb8); compressed: image_raw/compressed (JPEG); both (default raw)")
    parser.add_argument("--namespace", default="/camera", help="topic namespace (/camera)")
    parser.add_argument("--fps", type=float, default=0.0, help="stamp rate (0: the video's own rate)")
    parser.add_argument("--max-frames", type=int, default=0, help="only the first N frames (0: all)")
    parser.add_argument("--frame-id", default="camera_optical_frame", help="header frame_id")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of compressed images (95)")


def run(args: argparse.Namespace) -> int:
    spec = VideoBagSpec(namespace=args.namespace, transport=args.transport, storage=args.storage, fps=args.fps,
                        max_frames=args.max_frames, frame_id=args.frame_id, jpeg_quality=args.jpeg_quality)

    def progress(n: int) -> None:
        if n % 100 == 0:
            print(f"[bag from-video] {n} frames", file=sys.stderr, flush=True)

    try:
        result = bag_from_video(args.video, args.out, args.gt or None, spec, progress)
    except (FileExistsError, ValueError) as exc:
        print(f"bag from-video: {exc}", file=sys.stderr)
        return 2
    write_json(f"{args.out}/from_video.json", {**result, "arguments": {k: v for k, v in vars(args).items()
                                                                       if not callable(v)}})
    topics = ", ".join(f"{t} ({n})" for t, n in result["topics"].items())
    print(f"wrote {args.out}: {result['frames']} frames {result['size'][0]}x{result['size'][1]} at "
          f"{result['fps']:g} fps ({result['storage']}): {topics}")
    return 0

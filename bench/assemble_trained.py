"""Rebuild a full encoder checkpoint from its trained parameters and its seed-initialised frozen ones.

A checkpoint whose global stream is frozen at its random initialisation (``model.freeze: [global_stream.vit.]``)
carries 44 MB of weights that the seed alone determines. A run on a remote GPU can then send back only what it
trained (``trained.safetensors``: every tensor but the frozen ones) plus ``model.json``; this script redraws the
frozen tensors with the same seed and registry options, checks their SHA-256 against the one the remote run printed
(``--vit-sha256``), loads the trained tensors over them and writes the checkpoint in float16 with the remote run's
config and provenance.

    python bench/assemble_trained.py --run runs/gpu_sweep/long --out runs/gpu_sweep/long/model \
        --vit-sha256 05f5f2d1...
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from perception.models import create_encoder
from perception.models.checkpoint import save_checkpoint


def frozen_sha256(state: dict[str, torch.Tensor], marker: str = "vit.") -> str:
    """SHA-256 over the raw bytes of the tensors whose names contain ``marker``, in name order."""
    frozen = {k: t for k, t in state.items() if marker in k}
    return hashlib.sha256(b"".join(frozen[k].contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                                   for k in sorted(frozen))).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="folder with trained.safetensors and model.json")
    parser.add_argument("--out", required=True, help="checkpoint path without suffix")
    parser.add_argument("--vit-sha256", required=True, help="SHA-256 of the frozen float16 tensors, from the run")
    parser.add_argument("--correspondence-readout", choices=("dense", "local"), default="",
                        help="declare this map for correspondence (default: the run's model.correspondence_readout)")
    args = parser.parse_args()
    run = Path(args.run)
    meta = json.loads((run / "model.json").read_text())
    torch.manual_seed(int(meta["config"]["run"]["seed"]))
    model = create_encoder(meta["name"], **meta["encoder_kwargs"]).half()
    digest = frozen_sha256(model.state_dict())
    if digest != args.vit_sha256:
        raise SystemExit(f"frozen tensors differ from the run's: sha256 {digest} != {args.vit_sha256}")
    trained = load_file(str(run / "trained.safetensors"))
    missing, unexpected = model.load_state_dict(trained, strict=False)
    if unexpected or any("vit." not in k for k in missing):
        raise SystemExit(f"trained tensors do not fit: unexpected {unexpected}, missing {missing}")
    provenance = dict(meta["provenance"], assembled={"frozen_sha256": digest, "trained_from": str(run)})
    readout = args.correspondence_readout or meta.get("correspondence_readout", "dense")
    print(save_checkpoint(model, args.out, meta["config"], provenance, readout))


if __name__ == "__main__":
    main()

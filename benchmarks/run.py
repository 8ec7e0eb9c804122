"""`make bench`: every scenario side by side, printed as Markdown and written to
docs/benchmarks.md (with the date and the machine). `--scale` shrinks every model (the smoke
test runs 0.02); figures are medians of alternating A/B runs and their ratio A / B."""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import HEADER, Pair, machine  # noqa: E402


def _device_line(device: str) -> str:
    if device == "cpu":
        return ""
    import torch

    return f"; device {device}: {torch.cuda.get_device_name(torch.device(device))}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated scenario numbers")
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    ap.add_argument(
        "--device",
        default="cpu",
        help="torch device of scenarios 1, 3, 6 and 7 (cuda: only those run, see gpu-check.sh)",
    )
    ap.add_argument("--out", default="", help="write the tables to this file instead")
    ap.add_argument(
        "--isolate",
        action="store_true",
        help="run each scenario in a process of its own (make bench): what one leaves behind "
        "(the freed pages of a 6 GB model, torch's threads) then cannot slow the next",
    )
    ap.add_argument("--sections", default="", help=argparse.SUPPRESS)  # an isolated child's
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    device = args.device
    if device != "cpu":  # scenarios 2, 4, 5, 8 and 9 are CPU comparisons by definition
        only = (only or {"1", "3", "6", "7"}) & {"1", "3", "6", "7"}
        if not only:
            print(f"--device {device} runs scenarios 1, 3, 6 and 7 only", file=sys.stderr)
            return 2
    sections: list[str] = []
    start = time.time()
    if args.isolate:
        sections = _isolated(args, only, device)

    def run(num: str, title: str, fn) -> None:
        if args.isolate or (only and num not in only):
            return
        t = time.time()
        out = fn()
        pairs, note = out if isinstance(out, tuple) else (out, "")
        body = [f"### {title}", "", HEADER, *(p.row() if isinstance(p, Pair) else p for p in pairs)]
        if note:
            body += ["", note]
        body += ["", f"({time.time() - t:.0f} s)", ""]
        text = "\n".join(body)
        print(text, flush=True)
        sections.append(text)

    from benchmarks import bench_torch

    r = args.repeats
    run(
        "1",
        "1. torch CPU: GPT-2 small, gpt2 preset vs the HF-style loop",
        lambda: bench_torch.gpt2(args.scale, r, device),
    )
    run(
        "2",
        "2. torch CPU: ResNet-50, torch-defaults vs reset_parameters()",
        lambda: bench_torch.resnet50(args.scale, r),
    )
    run(
        "3",
        "3. meta device: Llama-shaped model, to_empty then torchtitan-llama3 vs its init_weights",
        lambda: bench_torch.meta_llama(args.scale, max(2, r // 2), device),
    )
    run(
        "6",
        "6. spec micro-benchmarks on one 4096 x 4096 tensor",
        lambda: bench_torch.micro(max(64, int(4096 * min(1.0, args.scale * 4))), r, device),
    )
    from benchmarks import bench_zoo

    run(
        "7",
        "7. the zoo: default apply vs each model's own init code",
        lambda: bench_zoo.zoo(args.scale, r, device),
    )
    run(
        "8",
        "8. what all or nothing costs: default apply vs atomic=False, and peak RSS",
        lambda: bench_zoo.atomic_cost(args.scale, r),
    )
    if os.environ.get("BENCH_7B") == "1":
        run(
            "9",
            "9. a 7-8B Llama (torchtitan Llama 3, bfloat16): meta -> to_empty -> apply vs init_states",
            lambda: bench_zoo.llama_7b(args.scale),
        )
    from benchmarks import bench_flax

    run(
        "4",
        "4. Flax (jit): GPT-2-shaped linen model, flax-defaults vs model.init",
        lambda: bench_flax.flax_gpt2(args.scale, r),
    )
    try:
        from benchmarks import bench_portable
    except ImportError as exc:  # pragma: no cover
        print(f"scenario 5 unavailable: {exc}")
    else:
        run(
            "5",
            "5. portable vs native stream, elements/s",
            lambda: bench_portable.table(args.scale),
        )
    if device == "cpu":
        from benchmarks import bench_check

        run(
            "check",
            "check: a GPT-2-small safetensors checkpoint vs reading it with safetensors + NumPy mean/std",
            lambda: bench_check.table(args.scale, max(3, r)),
        )
    from benchmarks import bench_fingerprint

    run(
        "fingerprint",
        "fingerprint: GB/s on one core, vs a NumPy sum of the same bytes",
        lambda: bench_fingerprint.table(args.scale, r),
    )
    if args.sections:
        pathlib.Path(args.sections).write_text("\n".join(sections))
    if args.write or args.out:
        head = [
            "# Benchmarks",
            "",
            "Generated by `make bench` (`benchmarks/run.py`); every figure is the median of "
            f"{r} alternating runs of A and B in one process"
            + (" (a process per scenario)" if args.isolate else "")
            + ", and A / B their ratio (below 1: initspec is faster).",
            "",
            f"{datetime.date.today().isoformat()}, {machine()}{_device_line(device)}; scale {args.scale}, total {time.time() - start:.0f} s.",
            "",
        ]
        target = pathlib.Path(args.out) if args.out else REPO / "docs" / "benchmarks.md"
        if not args.out and os.environ.get("BENCH_7B") != "1" and not (only and "9" not in only):
            sections += _kept_7b(target)
        notes = REPO / "benchmarks" / "NOTES.md"  # what the tables cannot say, kept by hand
        tail = [notes.read_text()] if notes.exists() and not args.out else []
        target.write_text("\n".join(head + sections + tail))
    return 0


def _kept_7b(page: pathlib.Path) -> list[str]:
    """Scenario 9 as the page last recorded it (it runs only with BENCH_7B=1: minutes and
    16 GB), so that a plain make bench does not drop it."""
    if not page.exists():
        return []
    text = page.read_text()
    start = text.find("### 9.")
    if start < 0:
        return []
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i >= 0]
    section = text[start : min(ends) + 1] if ends else text[start:]
    mark = "(kept from an earlier run with BENCH_7B=1: not rerun by this make bench)"
    if mark not in section:
        section = section.rstrip() + "\n\n" + mark + "\n"
    return [section]


ORDER = ("1", "2", "3", "6", "7", "8", "9", "4", "5", "check", "fingerprint")


def _isolated(args: argparse.Namespace, only: set[str], device: str) -> list[str]:
    """Each selected scenario run by a child process of this script; their sections."""
    sections: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for num in ORDER:
            if (only and num not in only) or (num == "9" and os.environ.get("BENCH_7B") != "1"):
                continue
            out = pathlib.Path(tmp) / f"{num}.md"
            cmd = [sys.executable, __file__, "--only", num, "--scale", str(args.scale)]
            cmd += ["--repeats", str(args.repeats), "--device", device, "--sections", str(out)]
            subprocess.run(cmd, check=True)
            sections.append(out.read_text())
    return sections


if __name__ == "__main__":
    sys.exit(main())

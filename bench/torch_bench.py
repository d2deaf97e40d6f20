"""PyTorch side of `./dev.sh bench`: the seed's own code in eager mode, frozen TorchScript, frozen
TorchScript with optimize_for_inference, torch.compile (inductor, freezing) and, given ONNX files,
ONNX Runtime on the seed and on the HRank-pruned model, interleaved iteration by iteration (in a
new, seeded order each time) in this one process, per batch size.

    torch_bench.py [--reuse-freed-memory] [--onnx SEED.onnx PRUNED.onnx SEED.safetensors] \
        THREADS ITERS SCRIPT_OUT BATCH...

`--onnx` gives the files `vggdsl export --fold-bn` wrote and the seed's weights they came from,
which the seed's model here loads, so that ONNX Runtime's outputs are checked against eager's.
ONNX Runtime runs through bench/ort_bench.py's session (THREADS intra-op threads, not spinning).

Writes the frozen TorchScript module to SCRIPT_OUT (the Rust side loads that very file with
tch::CModule: it is the bridge between the two processes) and prints one JSON object: for every
batch size and variant, the median time and the median, first and third quartile of the
per-iteration ratio eager time / variant time. `--reuse-freed-memory` first applies the glibc
setting that the `vggdsl` command uses (malloc.py).
"""
import json
import os
import random
import sys
import time

import torch

import malloc  # bench/malloc.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test-support", "python"))
import seed_vgg  # noqa: E402


def quartiles(values):
    v = sorted(values)
    n = len(v)
    return v[n // 4], v[n // 2], v[(3 * n) // 4]


def onnx_files():
    """The `--onnx` files (seed, pruned, seed weights), removed from the arguments; or None."""
    if "--onnx" not in sys.argv:
        return None
    i = sys.argv.index("--onnx")
    files = sys.argv[i + 1:i + 4]
    del sys.argv[i:i + 4]
    return files


def onnx_runtime(path, threads):
    """A variant running an ONNX file in ONNX Runtime, on the batch's own memory."""
    import ort_bench  # bench/ort_bench.py: imports onnxruntime

    s = ort_bench.session(path, threads)
    return lambda x: torch.from_numpy(ort_bench.run(s, x.numpy()))


def main():
    reuse_freed_memory = malloc.apply_if_asked()
    onnx = onnx_files()
    threads, iters, script_out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    batches = [int(b) for b in sys.argv[4:]]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = seed_vgg.VGG().eval()
    if onnx:
        from safetensors.torch import load_file
        net.load_state_dict(load_file(onnx[2]))
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "reuse_freed_memory": reuse_freed_memory, "batches": {}}
    with torch.no_grad():
        # The seed's forward builds nn.AvgPool2d inline, which torch.jit.script refuses: trace it.
        frozen = torch.jit.freeze(torch.jit.trace(net, torch.randn(1, 3, 32, 32)))
        frozen.save(script_out)
        optimized = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(net, torch.randn(1, 3, 32, 32)))
        )
        torch._inductor.config.freezing = True
        compiled = torch.compile(net)
        variants = {
            "eager": net,
            "torchscript": frozen,
            "optimize_for_inference": optimized,
            "compile": compiled,
        }
        # Another model: timed like the rest, its outputs not comparable with eager's.
        unchecked = set()
        if onnx:
            variants["onnxruntime"] = onnx_runtime(onnx[0], threads)
            variants["onnxruntime_pruned"] = onnx_runtime(onnx[1], threads)
            unchecked.add("onnxruntime_pruned")
        for batch in batches:
            x = torch.randn(batch, 3, 32, 32)
            reference = net(x)
            for name, f in variants.items():
                for _ in range(3):  # warm-up; compiles torch.compile's graph for this shape
                    y = f(x)
                if name not in unchecked and not torch.allclose(y, reference, rtol=1e-4, atol=1e-6 * reference.abs().max()):
                    raise SystemExit(f"{name} disagrees with eager at batch {batch}")
            names = list(variants)
            times = {name: [] for name in names}
            n = iters if batch <= 64 else max(8, iters // 4)
            order = list(names)
            shuffle = random.Random(0).shuffle  # a new order each iteration, as the Rust side
            for _ in range(n):
                shuffle(order)
                for name in order:
                    t = time.perf_counter()
                    variants[name](x)
                    times[name].append(time.perf_counter() - t)
            result = {}
            for name in names:
                ratios = [e / t for e, t in zip(times["eager"], times[name])]
                q1, med, q3 = quartiles(ratios)
                result[name] = {
                    "seconds": quartiles(times[name])[1],
                    "ratio": med,
                    "ratio_q1": q1,
                    "ratio_q3": q3,
                }
            out["batches"][str(batch)] = result
            print(f"python: batch {batch} done", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

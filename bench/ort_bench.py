"""ONNX Runtime's side of a benchmark: a CPU session for a file `vggdsl export` wrote.

    from ort_bench import session, run
    s = session("net.onnx", threads=2)
    logits = run(s, x)                      # x: float32 numpy array [batch, C, H, W]

    ort_bench.py MODEL.onnx THREADS ITERS BATCH...   # prints the median time per batch as JSON

The session takes the CPU provider, every graph optimisation, `threads` intra-op threads that
do not spin while waiting for work (as libtorch's threads run under OMP_WAIT_POLICY=PASSIVE;
spinning threads would take CPU time from whatever is interleaved with them) and sequential
execution, so that one inference uses exactly `threads` cores.
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(s, x):
    """The logits of one batch."""
    (name,) = [i.name for i in s.get_inputs()]
    return s.run(None, {name: x})[0]


def main():
    path, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = session(path, threads)
    shape = s.get_inputs()[0].shape[1:]
    medians = {}
    for batch in (int(b) for b in sys.argv[4:]):
        x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
        run(s, x)  # warm-up
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            run(s, x)
            times.append(time.perf_counter() - start)
        medians[batch] = statistics.median(times)
    print(json.dumps({"onnxruntime": ort.__version__, "threads": threads, "median_s": medians}))


if __name__ == "__main__":
    main()

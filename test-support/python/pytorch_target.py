"""PyTorch's side of tests/pytorch_target.rs: checks modules written by `vggdsl compile --target
pytorch` against the Rust models, in one process (importing torch takes seconds).

    python pytorch_target.py JOBS.json

JOBS.json is a list of {"module": path of the .py, "class": model name, "seed": int,
"rust_init": safetensors the Rust model saved after tch::manual_seed(seed), "rust_repr": the Rust
model's Display, "out": a path prefix}. For each job this builds the class after
torch.manual_seed(seed) and compares its state_dict with the Rust one (keys, dtypes, shapes and
values, with torch.equal) and print(model) with the Rust text; then it trains two SGD steps (so
that the weights and BatchNorm statistics are no longer the initial ones), saves the state_dict
as OUT.pt (torch.save) and OUT.safetensors, and saves to OUT.outputs.safetensors an input batch
with the model's outputs on it in eval and in train mode, for the Rust side to reproduce.

Prints one JSON object: {"results": [{"class", "init_differs": [keys], "repr_equal", "repr"}]}.
"""

import importlib.util
import json
import sys

sys.dont_write_bytecode = (
    True  # keep the generated modules' folders free of __pycache__
)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

BATCH = 4


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"generated_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def init_differences(model, rust):
    ours = model.state_dict()
    keys = sorted(set(ours) | set(rust))
    return [
        k
        for k in keys
        if k not in ours
        or k not in rust
        or ours[k].dtype != rust[k].dtype
        or ours[k].shape != rust[k].shape
        or not torch.equal(ours[k], rust[k])
    ]


def train_two_steps(model, cls, seed):
    generator = torch.Generator().manual_seed(seed)
    c, h, w = cls.INPUT_SHAPE
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(2):
        x = torch.randn(BATCH, c, h, w, generator=generator)
        y = torch.randint(cls.NUM_CLASSES, (BATCH,), generator=generator)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def run(job):
    cls = getattr(load_module(job["module"]), job["class"])
    torch.manual_seed(job["seed"])
    model = cls()
    result = {
        "class": job["class"],
        "init_differs": init_differences(model, load_file(job["rust_init"])),
        "repr": str(model),
    }
    result["repr_equal"] = result["repr"] == job["rust_repr"]

    train_two_steps(model, cls, job["seed"])
    out = job["out"]
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(model.state_dict(), out + ".pt")
    save_file(state, out + ".safetensors")

    c, h, w = cls.INPUT_SHAPE
    x = torch.randn(BATCH, c, h, w, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        model.eval()
        eval_out = model(x)
        model.train()  # last: a train-mode pass moves the running statistics
        train_out = model(x)
    save_file(
        {"x": x, "eval": eval_out, "train": train_out}, out + ".outputs.safetensors"
    )
    return result


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    print(json.dumps({"results": [run(job) for job in jobs]}))


if __name__ == "__main__":
    main()

"""Data-parallel training of a model written by `vggdsl compile --target pytorch`, with
PyTorch's DistributedDataParallel: one process per CPU core or GPU, on one machine or many.

    vggdsl compile --target pytorch net.vgg -o net.py
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py net.py --out-dir runs/ddp

The data are generated: noisy images of the model's INPUT_SHAPE around one random pattern per
class, so that there is something to learn. Replace `make_data` with your dataset.

The run folder gets what `vggdsl train` writes there: `metrics.jsonl` (one JSON object per epoch:
epoch from 1, loss, train_accuracy, test_accuracy, test_loss, lr, seconds) and `last.safetensors`,
the model's state_dict with its own keys, shapes and dtypes, which `vggdsl eval`, `vggdsl plot
training` and `vggdsl_runtime::load_state_dict` read as they read a run of `vggdsl train`.
Backend: gloo on CPU, nccl when every process has a GPU (`--backend` overrides).
"""

import argparse
import gc
import importlib.util
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "module", help="the .py file that vggdsl compile --target pytorch wrote"
    )
    p.add_argument(
        "--model", help="the class to train (default: the module's only one)"
    )
    p.add_argument("--out-dir", required=True, help="the run folder to write")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--train-size", type=int, default=512)
    p.add_argument("--test-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["gloo", "nccl"])
    return p.parse_args()


def load_model_class(path, name):
    spec = importlib.util.spec_from_file_location("vggdsl_generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = module.__all__
    if name is None:
        if len(names) != 1:
            sys.exit(
                f"{path} has the models {', '.join(names)}: choose one with --model"
            )
        name = names[0]
    if name not in names:
        sys.exit(f"{path} has no model {name}; it has {', '.join(names)}")
    return getattr(module, name)


def make_data(cls, size, seed):
    """Random images around one fixed random pattern per class (the same patterns on every
    process and for every split), so that what is learnt carries over to the test split.
    """
    patterns = torch.randn(
        cls.NUM_CLASSES,
        *cls.INPUT_SHAPE,
        generator=torch.Generator().manual_seed(12345),
    )
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(cls.NUM_CLASSES, (size,), generator=generator)
    x = 0.5 * patterns[y] + torch.randn(size, *cls.INPUT_SHAPE, generator=generator)
    return TensorDataset(x, y)


def summed(device, *values):
    """The values summed over every process."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def main():
    args = parse_args()
    use_cuda = torch.cuda.is_available() and args.backend != "gloo"
    dist.init_process_group(args.backend or ("nccl" if use_cuda else "gloo"))
    train_and_save(args, use_cuda)
    # Tearing gloo down while a DDP model still holds the group, or while a peer is still
    # connected, can abort ("terminate called without an active exception"). So the model goes
    # first (it left with train_and_save's frame; collect() frees its hooks' reference cycles),
    # then every rank waits for rank 0's save, then the group goes.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def train_and_save(args, use_cuda):
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    cls = load_model_class(args.module, args.model)
    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = DistributedDataParallel(
        cls().to(device), device_ids=[local_rank] if use_cuda else None
    )

    train = make_data(cls, args.train_size, args.seed + 1)
    test = make_data(cls, args.test_size, args.seed + 2)
    sampler = DistributedSampler(train, shuffle=True, seed=args.seed)
    train_loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    # Each process evaluates its own slice, so every test image counts once.
    test_slice = torch.utils.data.Subset(test, range(rank, len(test), world))
    test_loader = DataLoader(test_slice, batch_size=args.batch_size)

    opt = torch.optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
    )
    if rank == 0:
        os.makedirs(args.out_dir, exist_ok=True)
        metrics = open(os.path.join(args.out_dir, "metrics.jsonl"), "w")

    for epoch in range(1, args.epochs + 1):
        start = time.monotonic()
        sampler.set_epoch(epoch)
        model.train()
        loss_sum = correct = seen = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        loss_sum, correct, seen = summed(device, loss_sum, correct, seen)

        model.eval()
        test_loss = test_correct = test_seen = 0.0
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                out = model(x)
                test_loss += F.cross_entropy(out, y, reduction="sum").item()
                test_correct += (out.argmax(1) == y).sum().item()
                test_seen += len(y)
        test_loss, test_correct, test_seen = summed(
            device, test_loss, test_correct, test_seen
        )

        if rank == 0:
            line = {
                "epoch": epoch,
                "loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "test_accuracy": test_correct / test_seen,
                "test_loss": test_loss / test_seen,
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.monotonic() - start,
            }
            metrics.write(json.dumps(line) + "\n")
            metrics.flush()
            print(
                f"epoch {epoch}/{args.epochs}: loss {line['loss']:.4f}, "
                f"train {100 * line['train_accuracy']:.1f}%, "
                f"test {100 * line['test_accuracy']:.1f}% ({world} processes)",
                flush=True,
            )

    if rank == 0:
        metrics.close()
        save_state_dict(model.module, os.path.join(args.out_dir, "last.safetensors"))


def save_state_dict(model, path):
    """The model's state_dict as safetensors, with the safetensors package when it is there,
    else as a torch.save archive beside it (`vggdsl` reads both)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        from safetensors.torch import save_file
    except ImportError:
        path = path.rsplit(".", 1)[0] + ".pt"
        torch.save(state, path)
    else:
        save_file(state, path)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()

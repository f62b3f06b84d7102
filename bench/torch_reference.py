#!/usr/bin/env python3
"""PyTorch reference for `distill bench`: the same CPU workloads, the same JSON.

Prints ONE JSON object on stdout (progress goes to stderr) and, with --json FILE,
writes the same object to FILE:

  {"implementation": "pytorch", "version": "<torch version>", "threads": N,
   "figures": {"teacher_step_ms": {"median": x, "min": x, "max": x}, ...}}

Every figure is the median / min / max over --reps timed repeats, after --warmup
untimed repeats. Data is synthetic (uniform [0,1] pixels, labels 0..9): only the
shapes matter. Models, float32:
  teacher = MLP 784-1200-1200-10, ReLU, dropout 0.2 on the input and 0.5 after
            each hidden ReLU while training
  student = MLP 784-800-800-10, ReLU, no dropout
  SGD lr 0.05, momentum 0.9, dampening 0; batch 128.
Distillation loss, T = 20, alpha = 0.9:
  alpha * T^2 * KL(softmax(t/T) || softmax(s/T))  (summed over classes, mean over batch)
  + (1 - alpha) * CE(s, y)

Figures (one repeat = what is described):
  teacher_step_ms        median ms per teacher training step over --steps steps
                         (one fixed, pre-gathered batch of 128: no data gathering)
  teacher_epoch_s        one shuffled pass over --epoch-examples examples in batches of
                         128 (the last one partial; gathering each batch included)
  kd_step_live_ms        median ms per distillation step: teacher forward (eval, no_grad)
                         + student training step, fixed batch
  kd_epoch_live_s        one shuffled distillation epoch with the live teacher
  kd_step_cached_ms      like kd_step_live_ms, but the teacher's log-probabilities at T
                         are precomputed for the whole set (untimed) and indexed per batch
  kd_epoch_cached_s      one shuffled distillation epoch from the cached teacher
  teacher_latency_b1_us  median us per eval/no_grad forward of one example, over
  student_latency_b1_us  --latency-calls calls
  teacher_throughput_b1024  examples/s of eval/no_grad forwards at batch 1024
  student_throughput_b1024  (--throughput-iters forwards per repeat)

Denormals are kept, as `distill` keeps them by default; --flush-denormal flushes them
(torch.set_flush_denormal(True)), as `DISTILL_DENORMALS=flush distill ...` does.
"""

import argparse
import json
import math
import statistics
import sys
import time

FIGURES = [
    "teacher_step_ms",
    "teacher_epoch_s",
    "kd_step_live_ms",
    "kd_epoch_live_s",
    "kd_step_cached_ms",
    "kd_epoch_cached_s",
    "teacher_latency_b1_us",
    "student_latency_b1_us",
    "teacher_throughput_b1024",
    "student_throughput_b1024",
    "cnn_teacher_step_ms",
    "cnn_student_step_ms",
]

INPUTS = 784
CLASSES = 10
TEACHER_HIDDEN = (1200, 1200)
STUDENT_HIDDEN = (800, 800)
INPUT_DROPOUT = 0.2
HIDDEN_DROPOUT = 0.5
LR = 0.05
MOMENTUM = 0.9
BATCH = 128
TEMPERATURE = 20.0
ALPHA = 0.9
THROUGHPUT_BATCH = 1024
# distill's cnn:32,64/256 (hidden dropout 0.5) and cnn:16,32/64 on 28x28 grayscale images.
CNN_TEACHER = ((32, 64), 256, 0.5)
CNN_STUDENT = ((16, 32), 64, 0.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--reps", type=int, default=3, help="timed repeats per figure (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repeats first (default 1)")
    p.add_argument("--epoch-examples", type=int, default=55000,
                   help="synthetic training-set size (default 55000)")
    p.add_argument("--json", metavar="FILE", help="also write the JSON object to FILE")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help="run only these figures (comma-separated)")
    p.add_argument("--steps", type=int, default=50,
                   help="steps per repeat of the *_step_ms figures (default 50)")
    p.add_argument("--latency-calls", type=int, default=200,
                   help="calls per repeat of the *_latency_b1_us figures (default 200)")
    p.add_argument("--throughput-iters", type=int, default=10,
                   help="batch-1024 forwards per repeat of the *_throughput figures (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the tensors live (default cpu); cuda synchronizes before "
                        "every clock reading")
    p.add_argument("--flush-denormal", action="store_true",
                   help="flush denormals to zero (default: keep them, as distill does)")
    a = p.parse_args(argv)
    for name in ("threads", "reps", "epoch_examples", "steps", "latency_calls",
                 "throughput_iters"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    if a.only:
        wanted = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in FIGURES]
        if unknown:
            p.error(f"unknown figure(s) {unknown}; known: {', '.join(FIGURES)}")
        a.only = wanted
    else:
        a.only = list(FIGURES)
    return a


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(repeat, reps, warmup):
    """Runs `repeat` `warmup` times (results dropped), then `reps` timed times."""
    for _ in range(warmup):
        repeat()
    return summarize([repeat() for _ in range(reps)])


def main(argv=None):
    args = parse_args(argv)

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        log("torch_reference.py: --device cuda, but torch sees no CUDA device")
        return 3
    dev = torch.device(args.device)
    dtype = torch.float32
    # A GPU runs asynchronously: a clock read before the queue drains times only the launch.
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def mlp(hidden, input_dropout, hidden_dropout):
        layers = []
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        widths = [INPUTS, *hidden]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
            if hidden_dropout > 0:
                layers.append(nn.Dropout(hidden_dropout))
        layers.append(nn.Linear(widths[-1], CLASSES))
        return nn.Sequential(*layers).to(dev, dtype)

    def cnn(spec):
        channels, dense, dropout = spec
        layers, c_in = [nn.Unflatten(1, (1, 28, 28))], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()]
            c_in = c
        side = 28 >> len(channels)
        layers += [nn.Flatten(), nn.Linear(c_in * side * side, dense), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dense, CLASSES))
        return nn.Sequential(*layers).to(dev, dtype)

    def teacher_model():
        return mlp(TEACHER_HIDDEN, INPUT_DROPOUT, HIDDEN_DROPOUT)

    def student_model():
        return mlp(STUDENT_HIDDEN, 0.0, 0.0)

    def sgd(model):
        return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, dampening=0.0)

    n = args.epoch_examples
    x_all = torch.rand(n, INPUTS, dtype=dtype, device=dev)
    y_all = torch.randint(0, CLASSES, (n,), dtype=torch.long, device=dev)
    fixed_idx = torch.randperm(n, device=dev)[:BATCH]
    if fixed_idx.numel() < BATCH:  # tiny --epoch-examples: repeat rows to fill a batch
        fixed_idx = fixed_idx.repeat(math.ceil(BATCH / fixed_idx.numel()))[:BATCH]
    x_fixed, y_fixed = x_all[fixed_idx].contiguous(), y_all[fixed_idx].contiguous()

    def hard_step(model, opt, xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    def kd_step(student, opt, xb, yb, teacher_log_t):
        opt.zero_grad(set_to_none=True)
        s = student(xb)
        soft = F.kl_div(F.log_softmax(s / TEMPERATURE, dim=1), teacher_log_t,
                        log_target=True, reduction="batchmean")
        loss = ALPHA * TEMPERATURE * TEMPERATURE * soft + (1.0 - ALPHA) * F.cross_entropy(s, yb)
        loss.backward()
        opt.step()
        return loss

    def teacher_log_probs(teacher, xb):
        with torch.no_grad():
            return F.log_softmax(teacher(xb) / TEMPERATURE, dim=1)

    def step_repeat(step):
        def repeat():
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter_ns()
                step()
                sync()
                times.append(time.perf_counter_ns() - t0)
            return statistics.median(times) / 1e6  # ms
        return repeat

    def epoch_repeat(batch_step):
        def repeat():
            t0 = time.perf_counter_ns()
            perm = torch.randperm(n, device=dev)
            for i in range(0, n, BATCH):
                batch_step(perm[i:i + BATCH])
            sync()
            return (time.perf_counter_ns() - t0) / 1e9  # s
        return repeat

    last_loss = {}

    def check_finite(name, loss):
        v = float(loss.detach())
        last_loss[name] = v
        if not math.isfinite(v):
            log(f"warning: {name}: loss is {v} (timings may not be representative)")

    figures = {}

    def run(name, repeat, after=None):
        if name not in args.only:
            return
        log(f"[pytorch] {name} ...")
        figures[name] = measure(repeat, args.reps, args.warmup)
        if after:
            after()
        f = figures[name]
        log(f"[pytorch] {name}: median {f['median']:.6g} (min {f['min']:.6g}, max {f['max']:.6g})")

    # --- teacher training -------------------------------------------------------------
    if {"teacher_step_ms", "teacher_epoch_s"} & set(args.only):
        teacher = teacher_model().train()
        opt = sgd(teacher)
        holder = {}

        def t_step():
            holder["loss"] = hard_step(teacher, opt, x_fixed, y_fixed)

        def t_batch(idx):
            holder["loss"] = hard_step(teacher, opt, x_all[idx], y_all[idx])

        done = lambda: check_finite("teacher", holder["loss"])  # noqa: E731
        run("teacher_step_ms", step_repeat(t_step), done)
        run("teacher_epoch_s", epoch_repeat(t_batch), done)
        del teacher, opt

    # --- CNN training steps ------------------------------------------------------------
    for name, spec in (("cnn_teacher_step_ms", CNN_TEACHER), ("cnn_student_step_ms", CNN_STUDENT)):
        if name in args.only:
            model = cnn(spec).train()
            opt = sgd(model)
            holder = {}

            def c_step(model=model, opt=opt, holder=holder):
                holder["loss"] = hard_step(model, opt, x_fixed, y_fixed)

            run(name, step_repeat(c_step), lambda h=holder, n=name: check_finite(n, h["loss"]))
            del model, opt

    # --- distillation -----------------------------------------------------------------
    kd_names = {"kd_step_live_ms", "kd_epoch_live_s", "kd_step_cached_ms", "kd_epoch_cached_s"}
    if kd_names & set(args.only):
        teacher = teacher_model().eval()
        holder = {}
        done = lambda: check_finite("student", holder["loss"])  # noqa: E731

        if {"kd_step_live_ms", "kd_epoch_live_s"} & set(args.only):
            student = student_model().train()
            opt = sgd(student)

            def live_step():
                holder["loss"] = kd_step(student, opt, x_fixed, y_fixed,
                                         teacher_log_probs(teacher, x_fixed))

            def live_batch(idx):
                xb = x_all[idx]
                holder["loss"] = kd_step(student, opt, xb, y_all[idx],
                                         teacher_log_probs(teacher, xb))

            run("kd_step_live_ms", step_repeat(live_step), done)
            run("kd_epoch_live_s", epoch_repeat(live_batch), done)
            del student, opt

        if {"kd_step_cached_ms", "kd_epoch_cached_s"} & set(args.only):
            # Untimed: the teacher's log-probabilities at T for the whole set, [n, 10].
            cache = torch.cat([teacher_log_probs(teacher, x_all[i:i + THROUGHPUT_BATCH])
                               for i in range(0, n, THROUGHPUT_BATCH)])
            assert cache.shape == (n, CLASSES)
            student = student_model().train()
            opt = sgd(student)

            def cached_step():
                holder["loss"] = kd_step(student, opt, x_fixed, y_fixed, cache[fixed_idx])

            def cached_batch(idx):
                holder["loss"] = kd_step(student, opt, x_all[idx], y_all[idx], cache[idx])

            run("kd_step_cached_ms", step_repeat(cached_step), done)
            run("kd_epoch_cached_s", epoch_repeat(cached_batch), done)
            del student, opt, cache
        del teacher

    # --- inference ----------------------------------------------------------------------
    for role, make in (("teacher", teacher_model), ("student", student_model)):
        lat, thr = f"{role}_latency_b1_us", f"{role}_throughput_b1024"
        if not {lat, thr} & set(args.only):
            continue
        model = make().eval()
        x1 = x_all[:1].contiguous()
        xb = torch.rand(THROUGHPUT_BATCH, INPUTS, dtype=dtype, device=dev)

        def lat_repeat():
            times = []
            with torch.no_grad():
                for _ in range(args.latency_calls):
                    t0 = time.perf_counter_ns()
                    model(x1)
                    sync()
                    times.append(time.perf_counter_ns() - t0)
            return statistics.median(times) / 1e3  # us

        def thr_repeat():
            with torch.no_grad():
                t0 = time.perf_counter_ns()
                for _ in range(args.throughput_iters):
                    model(xb)
                sync()
                elapsed = (time.perf_counter_ns() - t0) / 1e9
            return THROUGHPUT_BATCH * args.throughput_iters / elapsed  # examples/s

        run(lat, lat_repeat)
        run(thr, thr_repeat)
        del model

    result = {
        "implementation": "pytorch",
        "version": torch.__version__,
        "threads": args.threads,
        "device": args.device,
        "figures": {name: figures[name] for name in FIGURES if name in figures},
    }
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

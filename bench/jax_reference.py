#!/usr/bin/env python3
"""JAX reference for `distill bench`: the workloads of torch_reference.py, jit-compiled.

Same command line and JSON as torch_reference.py, with "implementation": "jax":

  {"implementation": "jax", "version": "<jax version>", "threads": N,
   "figures": {"teacher_step_ms": {"median": x, "min": x, "max": x}, ...}}

Models, data, optimizer and loss are those of torch_reference.py (see its header):
teacher MLP 784-1200-1200-10 (dropout 0.2 input / 0.5 hidden while training), student
MLP 784-800-800-10, float32, batch 128, SGD lr 0.05 momentum 0.9 dampening 0 (written
here in plain JAX: buf = 0.9 * buf + grad; p -= 0.05 * buf), T = 20, alpha = 0.9.

JAX specifics:
  * each training step (forward, loss, backward, SGD update) is one jitted function with
    the parameters and momentum buffers donated; in the live-teacher KD step the teacher
    forward is inside the same jitted function (under stop_gradient);
  * epochs gather each shuffled batch inside the jitted step from the whole set on the
    device, and dispatch asynchronously: the time ends when the last step's results are
    ready. Step and latency figures wait for every call. The last partial batch has its
    own shape, so its first call compiles: --warmup 1 (the default) keeps compiles out;
  * threads: XLA's CPU client has no thread-count option, so --threads N pins this
    process to N CPUs (os.sched_setaffinity, before jax is imported) and, for N = 1, also
    turns off XLA's multi-threaded Eigen kernels.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import types

FIGURES = [
    "teacher_step_ms",
    "teacher_epoch_s",
    "kd_step_live_ms",
    "kd_epoch_live_s",
    "kd_step_cached_ms",
    "kd_epoch_cached_s",
    "cnn_teacher_step_ms",
    "cnn_student_step_ms",
    "teacher_latency_b1_us",
    "student_latency_b1_us",
    "teacher_throughput_b1024",
    "student_throughput_b1024",
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
# distill's cnn:32,64/256 (hidden dropout 0.5) and cnn:16,32/64 on 28x28 grayscale images, as
# torch_reference.py: 3x3 convolutions (padding 1), each then a 2x2 max-pool and ReLU, then a
# dense ReLU layer and the output.
CNN_TEACHER = ((32, 64), 256, 0.5)
CNN_STUDENT = ((16, 32), 64, 0.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="CPUs to run on (default 2)")
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


def limit_threads(n):
    """Pins the process to n CPUs; must run before jax is imported."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = []
    if allowed and n < len(allowed):
        os.sched_setaffinity(0, allowed[:n])
    elif allowed and n > len(allowed):
        log(f"warning: --threads {n} but only {len(allowed)} CPUs are available")
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)

    import warnings

    import numpy as np
    import jax
    import jax.numpy as jnp

    # Donation is best effort on CPU; do not flood stderr if a buffer cannot be reused.
    warnings.filterwarnings("ignore", message=".*donated buffers.*")
    jax.config.update("jax_platforms", "cpu")

    rng = np.random.default_rng(args.seed)
    base_key = jax.random.PRNGKey(args.seed)

    def init_mlp(key, hidden):
        widths = [INPUTS, *hidden, CLASSES]
        params = []
        for a, b in zip(widths[:-1], widths[1:]):
            key, kw, kb = jax.random.split(key, 3)
            bound = 1.0 / math.sqrt(a)  # PyTorch nn.Linear's default ranges
            params.append((jax.random.uniform(kw, (a, b), jnp.float32, -bound, bound),
                           jax.random.uniform(kb, (b,), jnp.float32, -bound, bound)))
        return params

    def dropout(key, x, p):
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
        return jnp.where(keep, x / (1.0 - p), 0.0)

    def forward(params, x, key=None, input_p=0.0, hidden_p=0.0):
        """Logits; dropout only when a key is given (training)."""
        train = key is not None
        if train and input_p > 0:
            key, k = jax.random.split(key)
            x = dropout(k, x, input_p)
        last = len(params) - 1
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < last:
                x = jax.nn.relu(x)
                if train and hidden_p > 0:
                    key, k = jax.random.split(key)
                    x = dropout(k, x, hidden_p)
        return x

    def cross_entropy(logits, y):
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def teacher_log_probs(tparams, x):
        return jax.nn.log_softmax(forward(tparams, x) / TEMPERATURE, axis=1)

    def kd_loss(logits, y, teacher_log_t):
        s_log_t = jax.nn.log_softmax(logits / TEMPERATURE, axis=1)
        kl = jnp.sum(jnp.exp(teacher_log_t) * (teacher_log_t - s_log_t)) / logits.shape[0]
        return (ALPHA * TEMPERATURE * TEMPERATURE * kl
                + (1.0 - ALPHA) * cross_entropy(logits, y))

    def sgd(params, mom, grads):
        mom = jax.tree_util.tree_map(lambda m, g: MOMENTUM * m + g, mom, grads)
        params = jax.tree_util.tree_map(lambda p, m: p - LR * m, params, mom)
        return params, mom

    def teacher_step_impl(params, mom, x, y, step):
        key = jax.random.fold_in(base_key, step)
        loss, grads = jax.value_and_grad(
            lambda p: cross_entropy(forward(p, x, key, INPUT_DROPOUT, HIDDEN_DROPOUT), y))(params)
        params, mom = sgd(params, mom, grads)
        return params, mom, loss

    def kd_step_impl(params, mom, x, y, teacher_log_t):
        loss, grads = jax.value_and_grad(lambda p: kd_loss(forward(p, x), y, teacher_log_t))(params)
        params, mom = sgd(params, mom, grads)
        return params, mom, loss

    donate = dict(donate_argnums=(0, 1))
    teacher_step = jax.jit(teacher_step_impl, **donate)
    teacher_step_idx = jax.jit(
        lambda p, m, X, Y, idx, step: teacher_step_impl(p, m, X[idx], Y[idx], step), **donate)
    kd_live_step = jax.jit(
        lambda p, m, tp, x, y: kd_step_impl(
            p, m, x, y, jax.lax.stop_gradient(teacher_log_probs(tp, x))), **donate)
    kd_live_step_idx = jax.jit(
        lambda p, m, tp, X, Y, idx: kd_step_impl(
            p, m, X[idx], Y[idx], jax.lax.stop_gradient(teacher_log_probs(tp, X[idx]))), **donate)
    kd_cached_step = jax.jit(
        lambda p, m, x, y, C, idx: kd_step_impl(p, m, x, y, C[idx]), **donate)
    kd_cached_step_idx = jax.jit(
        lambda p, m, X, Y, C, idx: kd_step_impl(p, m, X[idx], Y[idx], C[idx]), **donate)
    def init_cnn(key, spec):
        channels, dense, _ = spec
        convs, c_in = [], 1
        for c in channels:
            key, kw, kb = jax.random.split(key, 3)
            bound = 1.0 / math.sqrt(c_in * 9)  # PyTorch nn.Conv2d's default ranges
            convs.append((jax.random.uniform(kw, (c, c_in, 3, 3), jnp.float32, -bound, bound),
                          jax.random.uniform(kb, (c,), jnp.float32, -bound, bound)))
            c_in = c
        side = 28 >> len(channels)
        widths = (c_in * side * side, dense)
        key, kw, kb, kw2, kb2 = jax.random.split(key, 5)
        b1 = 1.0 / math.sqrt(widths[0])
        b2 = 1.0 / math.sqrt(dense)
        dense_params = [
            (jax.random.uniform(kw, widths, jnp.float32, -b1, b1),
             jax.random.uniform(kb, (dense,), jnp.float32, -b1, b1)),
            (jax.random.uniform(kw2, (dense, CLASSES), jnp.float32, -b2, b2),
             jax.random.uniform(kb2, (CLASSES,), jnp.float32, -b2, b2)),
        ]
        return convs, dense_params

    def cnn_forward(params, x, key, dropout_p):
        convs, (d1, d2) = params
        x = x.reshape(x.shape[0], 1, 28, 28)
        for w, b in convs:
            x = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            x = x + b[None, :, None, None]
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                      "VALID")
            x = jax.nn.relu(x)
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ d1[0] + d1[1])
        if dropout_p > 0:
            x = dropout(key, x, dropout_p)
        return x @ d2[0] + d2[1]

    def cnn_step_impl(params, mom, x, y, step, dropout_p):
        key = jax.random.fold_in(base_key, step)
        loss, grads = jax.value_and_grad(
            lambda p: cross_entropy(cnn_forward(p, x, key, dropout_p), y))(params)
        params, mom = sgd(params, mom, grads)
        return params, mom, loss

    cnn_step = jax.jit(cnn_step_impl, static_argnums=(5,), **donate)
    predict = jax.jit(forward)
    log_probs = jax.jit(teacher_log_probs)

    n = args.epoch_examples
    x_all = jnp.asarray(rng.random((n, INPUTS), dtype=np.float32))
    y_all = jnp.asarray(rng.integers(0, CLASSES, n, dtype=np.int32))
    fixed_np = rng.permutation(n)[:BATCH]
    if fixed_np.size < BATCH:
        fixed_np = np.resize(fixed_np, BATCH)
    fixed_idx = jnp.asarray(fixed_np.astype(np.int32))
    x_fixed, y_fixed = x_all[fixed_idx], y_all[fixed_idx]
    x_fixed.block_until_ready()

    class State:
        """Parameters and momentum of one model being trained (donated at every step)."""

        def __init__(self, seed, hidden):
            self.params = init_mlp(jax.random.PRNGKey(seed), hidden)
            self.mom = jax.tree_util.tree_map(jnp.zeros_like, self.params)
            self.loss = None
            self.step = 0

    def step_repeat(step):
        def repeat():
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter_ns()
                step().block_until_ready()
                times.append(time.perf_counter_ns() - t0)
            return statistics.median(times) / 1e6  # ms
        return repeat

    def epoch_repeat(state, batch_step):
        def repeat():
            t0 = time.perf_counter_ns()
            perm = rng.permutation(n).astype(np.int32)
            for i in range(0, n, BATCH):
                batch_step(perm[i:i + BATCH])
            jax.block_until_ready((state.params, state.mom, state.loss))
            return (time.perf_counter_ns() - t0) / 1e9  # s
        return repeat

    def check_finite(name, state):
        v = float(state.loss)
        if not math.isfinite(v):
            log(f"warning: {name}: loss is {v} (timings may not be representative)")

    figures = {}

    def run(name, repeat, after=None):
        if name not in args.only:
            return
        log(f"[jax] {name} ...")
        figures[name] = measure(repeat, args.reps, args.warmup)
        if after:
            after()
        f = figures[name]
        log(f"[jax] {name}: median {f['median']:.6g} (min {f['min']:.6g}, max {f['max']:.6g})")

    only = set(args.only)

    # --- teacher training -------------------------------------------------------------
    if {"teacher_step_ms", "teacher_epoch_s"} & only:
        t = State(1, TEACHER_HIDDEN)

        def t_step():
            t.step += 1
            t.params, t.mom, t.loss = teacher_step(t.params, t.mom, x_fixed, y_fixed, t.step)
            return t.loss

        def t_batch(idx):
            t.step += 1
            t.params, t.mom, t.loss = teacher_step_idx(t.params, t.mom, x_all, y_all, idx, t.step)

        run("teacher_step_ms", step_repeat(t_step), lambda: check_finite("teacher", t))
        run("teacher_epoch_s", epoch_repeat(t, t_batch), lambda: check_finite("teacher", t))
        del t

    # --- CNN training steps ------------------------------------------------------------
    for name, seed, spec in (("cnn_teacher_step_ms", 7, CNN_TEACHER),
                             ("cnn_student_step_ms", 8, CNN_STUDENT)):
        if name not in only:
            continue
        params = init_cnn(jax.random.PRNGKey(seed), spec)
        c = types.SimpleNamespace(params=params, loss=None, step=0,
                                  mom=jax.tree_util.tree_map(jnp.zeros_like, params))

        def c_step(c=c, p=spec[2]):
            c.step += 1
            c.params, c.mom, c.loss = cnn_step(c.params, c.mom, x_fixed, y_fixed, c.step, p)
            return c.loss

        run(name, step_repeat(c_step), lambda c=c, n=name: check_finite(n, c))
        del c

    # --- distillation -----------------------------------------------------------------
    if {"kd_step_live_ms", "kd_epoch_live_s", "kd_step_cached_ms", "kd_epoch_cached_s"} & only:
        teacher = init_mlp(jax.random.PRNGKey(2), TEACHER_HIDDEN)

        if {"kd_step_live_ms", "kd_epoch_live_s"} & only:
            s = State(3, STUDENT_HIDDEN)

            def live_step():
                s.params, s.mom, s.loss = kd_live_step(s.params, s.mom, teacher, x_fixed, y_fixed)
                return s.loss

            def live_batch(idx):
                s.params, s.mom, s.loss = kd_live_step_idx(
                    s.params, s.mom, teacher, x_all, y_all, idx)

            run("kd_step_live_ms", step_repeat(live_step), lambda: check_finite("student", s))
            run("kd_epoch_live_s", epoch_repeat(s, live_batch),
                lambda: check_finite("student", s))
            del s

        if {"kd_step_cached_ms", "kd_epoch_cached_s"} & only:
            # Untimed: the teacher's log-probabilities at T for the whole set, [n, 10].
            cache = jnp.concatenate([log_probs(teacher, x_all[i:i + THROUGHPUT_BATCH])
                                     for i in range(0, n, THROUGHPUT_BATCH)])
            assert cache.shape == (n, CLASSES)
            cache.block_until_ready()
            s = State(4, STUDENT_HIDDEN)

            def cached_step():
                s.params, s.mom, s.loss = kd_cached_step(
                    s.params, s.mom, x_fixed, y_fixed, cache, fixed_idx)
                return s.loss

            def cached_batch(idx):
                s.params, s.mom, s.loss = kd_cached_step_idx(
                    s.params, s.mom, x_all, y_all, cache, idx)

            run("kd_step_cached_ms", step_repeat(cached_step), lambda: check_finite("student", s))
            run("kd_epoch_cached_s", epoch_repeat(s, cached_batch),
                lambda: check_finite("student", s))
            del s, cache
        del teacher

    # --- inference ----------------------------------------------------------------------
    for role, seed, hidden in (("teacher", 5, TEACHER_HIDDEN), ("student", 6, STUDENT_HIDDEN)):
        lat, thr = f"{role}_latency_b1_us", f"{role}_throughput_b1024"
        if not {lat, thr} & only:
            continue
        params = init_mlp(jax.random.PRNGKey(seed), hidden)
        x1 = x_all[:1]
        xb = jnp.asarray(rng.random((THROUGHPUT_BATCH, INPUTS), dtype=np.float32))
        jax.block_until_ready((x1, xb))

        def lat_repeat():
            times = []
            for _ in range(args.latency_calls):
                t0 = time.perf_counter_ns()
                predict(params, x1).block_until_ready()
                times.append(time.perf_counter_ns() - t0)
            return statistics.median(times) / 1e3  # us

        def thr_repeat():
            t0 = time.perf_counter_ns()
            outs = [predict(params, xb) for _ in range(args.throughput_iters)]
            jax.block_until_ready(outs)
            elapsed = (time.perf_counter_ns() - t0) / 1e9
            return THROUGHPUT_BATCH * args.throughput_iters / elapsed  # examples/s

        run(lat, lat_repeat)
        run(thr, thr_repeat)
        del params

    result = {
        "implementation": "jax",
        "version": jax.__version__,
        "threads": args.threads,
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

"""Compiled CPU kernels for the sparse part of a training step (numba).

A GRU4Rec step touches ~2,000 random rows of the item matrix (targets, shared samples, inputs). With
tensor operations, grouping duplicate rows, gathering optimizer state, the Adagrad-momentum arithmetic
and the scattered write-back take a dozen kernels and several sweeps over every touched row, which
costs more than the step's matrix products. Here it is one loop over the rows, in place, that asks the
memory for the rows a few entries ahead of the one it is updating (the rows are random: without that,
every row waits for its own cache misses).

Every kernel works on numpy views of the CPU tensors (shared memory, no copies). The arithmetic is the
one of ``optim.AdagradMomentum``; tests/test_training.py checks both against the official update.
"""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.compiled import AVAILABLE, COMPILE_OPTIONS, intrinsic, ir, njit, types

CACHE_LINE = 64
ROWS_AHEAD = 4  # how far ahead rows are fetched: enough to cover memory latency, measured


@intrinsic
def _prefetch_for_write(typingctx, address):
    """Hint the CPU to bring the cache line at ``address`` (an integer) in, for writing."""

    def codegen(context, builder, signature, args):
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        prefetch = builder.module.declare_intrinsic("llvm.prefetch", [byte_pointer], function_type)
        # (address, write, highest locality, data cache)
        pointer = builder.inttoptr(args[0], byte_pointer)
        builder.call(prefetch, [pointer, ir.Constant(int32, 1), ir.Constant(int32, 3), ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return types.void(types.intp), codegen


@njit(**COMPILE_OPTIONS)
def _prefetch_row(table, row):
    start = table.ctypes.data + row * table.strides[0]
    end = start + table.shape[1] * table.itemsize
    for address in range(start - start % CACHE_LINE, end, CACHE_LINE):
        _prefetch_for_write(address)


@njit(inline="always", **COMPILE_OPTIONS)
def _adagrad_momentum(acc, velocity, g, learning_rate, momentum, eps):
    """One element of the update: the new accumulator and momentum (the parameter moves by the latter)."""
    acc = acc + g * g
    return acc, momentum * velocity - learning_rate * g / np.sqrt(acc + eps)


@njit(inline="always", **COMPILE_OPTIONS)
def update_row(param, state, row, grads, entry, learning_rate, momentum, eps):
    """Row ``row`` of ``param`` [n, k] and its ``state`` [n, 2k] by the gradient ``grads[entry]``. Written with
    plain 2-d indexing (no per-row views): measurably faster in numba."""
    width = param.shape[1]
    for k in range(width):
        state[row, k], state[row, width + k] = _adagrad_momentum(
            state[row, k], state[row, width + k], grads[entry, k], learning_rate, momentum, eps
        )
        param[row, k] += state[row, width + k]


@njit(inline="always", **COMPILE_OPTIONS)
def update_bias(bias, bias_state, row, grad, learning_rate, momentum, eps):
    """The bias ``bias[row, 0]`` and its ``bias_state`` [n, 2] by the gradient ``grad``."""
    bias_state[row, 0], bias_state[row, 1] = _adagrad_momentum(
        bias_state[row, 0], bias_state[row, 1], grad, learning_rate, momentum, eps
    )
    bias[row, 0] += bias_state[row, 1]


@njit(**COMPILE_OPTIONS)
def adagrad_momentum_rows(
    param, state, rows, grads, bias, bias_state, bias_grads, first_entry, learning_rate, momentum, eps
):
    """Adagrad with momentum on the rows of ``param`` that entries ``rows`` touched, and on their ``bias``.

    ``param`` [n, k], ``state`` [n, 2k] (accumulator, then momentum per row); ``rows`` [m] with
    duplicates allowed; ``grads`` [m, k] one gradient row per entry. ``bias`` [n, 1] with ``bias_state``
    [n, 2] and ``bias_grads`` [b, 1] for the first b <= m entries only: rows that occur only after them
    keep their bias and its state (pass b = 0 for a parameter without bias). ``first_entry`` [n] is
    scratch, -1 everywhere on entry and on return. ``grads`` and ``bias_grads`` are consumed.

    Gradients of a row that occurs more than once are summed first; then per element
    ``acc += g^2; mom = momentum * mom - lr * g / sqrt(acc + eps); p += mom``.
    """
    count = rows.shape[0]
    n_bias = bias_grads.shape[0]
    width = param.shape[1]
    is_first = np.empty(count, dtype=np.bool_)
    for i in range(count):
        row = rows[i]
        first = first_entry[row]
        if first < 0:
            first_entry[row] = i
            is_first[i] = True
        else:
            is_first[i] = False
            for k in range(width):
                grads[first, k] += grads[i, k]
            if i < n_bias:  # then first < i < n_bias too
                bias_grads[first, 0] += bias_grads[i, 0]
    for i in range(count):
        first_entry[rows[i]] = -1

    for i in range(count):
        if i + ROWS_AHEAD < count:
            _prefetch_row(param, rows[i + ROWS_AHEAD])
            _prefetch_row(state, rows[i + ROWS_AHEAD])
        if not is_first[i]:
            continue
        row = rows[i]
        update_row(param, state, row, grads, i, learning_rate, momentum, eps)
        if i < n_bias:
            update_bias(bias, bias_state, row, bias_grads[i, 0], learning_rate, momentum, eps)


@njit(**COMPILE_OPTIONS)
def adagrad_momentum_dense(param, state, grads, learning_rate, momentum, eps):
    """The same update on whole flat tensors: ``param`` [k], ``state`` [2, k], ``grads`` [k]."""
    for k in range(param.shape[0]):
        state[0, k], state[1, k] = _adagrad_momentum(state[0, k], state[1, k], grads[k], learning_rate, momentum, eps)
        param[k] += state[1, k]


# -- losses ---------------------------------------------------------------------------------------
# The sampled losses spend their time in a dozen passes over the [batch, candidates] score matrix, most
# of them exponentials. Fused per row, with an exponential that vectorizes, they take a fraction of that.

_F = np.float32
# exp(x) for float32 (Cephes' expf): x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for exactness),
# exp(r) by a degree-7 polynomial, 2^n built from its bits. Within 2 ulp of the exact value for
# -87.3 <= x <= 88; smaller inputs give exp(-87.34) (about the smallest normal float), larger ones exp(88).
_EXP_MAX, _EXP_MIN = _F(88.0), _F(-87.33654475)
_LOG2E = _F(1.44269504088896341)
_LN2_HIGH, _LN2_LOW = _F(0.693359375), _F(-2.12194440e-4)
_EXP_POLY = (
    _F(1.9875691500e-4),
    _F(1.3981999507e-3),
    _F(8.3334519073e-3),
    _F(4.1665795894e-2),
    _F(1.6666665459e-1),
    _F(5.0000001201e-1),
)
_HALF, _ONE, _NEG_INF = _F(0.5), _F(1.0), _F(-np.inf)
# The exponential must keep its evaluation order (no reassociation); the loss kernels may reorder sums.
EXP_OPTIONS = {**COMPILE_OPTIONS, "fastmath": {"contract"}}
LOSS_OPTIONS = {**COMPILE_OPTIONS, "fastmath": {"contract", "reassoc"}}


@njit(**EXP_OPTIONS)
def exp_in_place(x, scratch):
    """``x[k] = exp(x[k])`` for a float32 vector; ``scratch`` is a float32 vector of the same length.
    (In place on purpose: with separate input and output vectors that may overlap, the compiled loop
    checks for overlap at run time and falls back to one element at a time when they are the same.)"""
    c0, c1, c2, c3, c4, c5 = _EXP_POLY
    bits = scratch.view(np.int32)
    for k in range(x.shape[0]):
        v = min(max(x[k], _EXP_MIN), _EXP_MAX)
        n = np.floor(v * _LOG2E + _HALF)
        r = v - n * _LN2_HIGH
        r = r - n * _LN2_LOW
        poly = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
        x[k] = poly * r * r + r + _ONE
        bits[k] = (np.int32(n) + np.int32(127)) << 23  # 2^n
    for k in range(x.shape[0]):
        x[k] *= scratch[k]


@njit(**LOSS_OPTIONS)
def row_max(row):
    """Largest entry of a float vector, through eight independent running maxima (a single running
    maximum is a chain of dependent comparisons, which is several times slower)."""
    count = row.shape[0]
    if count < 8:
        top = row[0]
        for j in range(1, count):
            top = max(top, row[j])
        return top
    m0, m1, m2, m3, m4, m5, m6, m7 = row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
    end = count - count % 8
    for j in range(8, end, 8):
        m0 = max(m0, row[j])
        m1 = max(m1, row[j + 1])
        m2 = max(m2, row[j + 2])
        m3 = max(m3, row[j + 3])
        m4 = max(m4, row[j + 4])
        m5 = max(m5, row[j + 5])
        m6 = max(m6, row[j + 6])
        m7 = max(m7, row[j + 7])
    for j in range(end, count):
        m0 = max(m0, row[j])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(**LOSS_OPTIONS)
def cross_entropy_rows(scores, target_columns, log_epsilon):
    """Softmax cross-entropy per row of ``scores`` [B, N] (float32), the target of row i in column
    ``target_columns[i]``, as the official GRU4Rec: -log(p + epsilon) with p the target's softmax probability
    (``log_epsilon``: log(epsilon), float64). Returns the losses [B]; ``scores`` is overwritten with
    d loss_i / d scores = w (softmax - onehot(target)), w = p / (p + epsilon)."""
    rows, cols = scores.shape
    losses = np.empty(rows, dtype=np.float64)
    scratch = np.empty(cols, dtype=scores.dtype)
    for i in range(rows):
        row = scores[i]
        target = target_columns[i]
        top = row_max(row)
        positive = row[target]
        for j in range(cols):
            row[j] -= top
        exp_in_place(row, scratch)
        total = _F(0.0)
        for j in range(cols):
            total += row[j]
        # log p = (o_target - max) - log(sum exp(o - max)): the sum is >= 1, its log exact enough, and log p stays
        # exact where p itself would underflow. -log(p + eps) = -logaddexp(log p, log eps).
        log_p = (np.float64(positive) - np.float64(top)) - np.log(np.float64(total))
        high, low = max(log_p, log_epsilon), min(log_p, log_epsilon)
        losses[i] = -(high + np.log1p(np.exp(low - high)))
        weight = _F(1.0 / (1.0 + np.exp(log_epsilon - log_p)))
        inverse = weight / total
        for j in range(cols):
            row[j] *= inverse
        row[target] -= weight
    return losses


@njit(**LOSS_OPTIONS)
def bpr_max_rows(scores, bpreg, elu_param, log_epsilon, first_column=0):
    """BPR-max per row of ``scores`` [B, N] (float32; row i's positive in column ``first_column + i``), after
    an ELU with ``elu_param`` > 0 (0: none). Returns the losses [B]; ``scores`` is overwritten with the gradient.

    With a the (activated) scores, s_j the softmax over the negatives (s_i = 0) and sig_j = sigmoid(a_i - a_j):
    loss = -log(A + eps) + bpreg * R, A = sum_j sig_j s_j, R = sum_j a_j^2 s_j;
    d/da_j = s_j ((A - sig_j^2) / (A + eps) + bpreg (2 a_j + a_j^2 - R)) for j != i,
    d/da_i = (sum_j sig_j^2 s_j - A) / (A + eps); through the ELU times 1 (a > 0) or a + elu_param.
    """
    rows, cols = scores.shape
    losses = np.empty(rows, dtype=np.float64)
    softmax = np.empty(cols, dtype=scores.dtype)
    sig = np.empty(cols, dtype=scores.dtype)
    scratch = np.empty(cols, dtype=scores.dtype)
    for row in range(rows):
        act = scores[row]
        i = first_column + row
        if elu_param > 0:
            sig[:] = act
            exp_in_place(sig, scratch)
            for j in range(cols):
                act[j] = act[j] if act[j] > 0 else elu_param * (sig[j] - _ONE)
        positive = act[i]
        act[i] = _NEG_INF  # the softmax runs over the negatives: shift by their largest score, not the positive's
        top = row_max(act)
        act[i] = positive
        for j in range(cols):
            softmax[j] = act[j] - top
            sig[j] = act[j] - positive
        exp_in_place(softmax, scratch)
        exp_in_place(sig, scratch)
        softmax[i] = _F(0.0)
        total = _F(0.0)
        for j in range(cols):
            total += softmax[j]
            sig[j] = _ONE / (_ONE + sig[j])  # sigmoid(a_i - a_j) = 1 / (1 + exp(a_j - a_i))
        inverse = _ONE / total
        ranked = _F(0.0)
        ranked_sq = _F(0.0)
        regular = _F(0.0)
        for j in range(cols):
            weight = softmax[j] * inverse
            softmax[j] = weight
            ranked += sig[j] * weight
            ranked_sq += sig[j] * sig[j] * weight
            regular += act[j] * act[j] * weight
        ranked_eps = ranked + log_epsilon
        losses[row] = bpreg * np.float64(regular) - np.log(np.float64(ranked_eps))
        inverse_ranked = _ONE / ranked_eps
        diagonal = (ranked_sq - ranked) * inverse_ranked
        for j in range(cols):
            a = act[j]
            grad = softmax[j] * ((ranked - sig[j] * sig[j]) * inverse_ranked + bpreg * (a * a + 2 * a - regular))
            if elu_param > 0 and a <= 0:
                grad *= a + elu_param
            act[j] = grad
        act[i] = diagonal * (_ONE if elu_param <= 0 or positive > 0 else positive + elu_param)
    return losses


# -- GRU cell -------------------------------------------------------------------------------------
# At batch 32 and 100 units the gate arithmetic is a few thousand elements: as tensor operations it is
# all call overhead (a dozen calls forward, as many backward). One call each way here.


@njit(**EXP_OPTIONS)
def gru_cell_forward(gi, gh, h, h_new, rz, n):
    """GRU gates from the projections ``gi = x W + b`` and ``gh = h U + c`` [B, 3H] (blocks r, z, n):
    ``r, z = sigmoid(gi + gh)``, ``n = tanh(gi_n + r * gh_n)``, ``h_new = n + z * (h - n)``.
    Writes ``h_new`` [B, H], ``rz`` [B, 2H] and ``n`` [B, H]."""
    batch, size = h.shape
    buffer = np.empty(3 * size, dtype=h.dtype)
    scratch = np.empty(3 * size, dtype=h.dtype)
    for b in range(batch):
        for k in range(2 * size):
            buffer[k] = -(gi[b, k] + gh[b, k])
        exp_in_place(buffer[: 2 * size], scratch)
        for k in range(2 * size):
            rz[b, k] = _ONE / (_ONE + buffer[k])  # sigmoid
        for k in range(size):
            buffer[k] = _F(2.0) * (gi[b, 2 * size + k] + rz[b, k] * gh[b, 2 * size + k])
        exp_in_place(buffer[:size], scratch)
        for k in range(size):
            candidate = _ONE - _F(2.0) / (_ONE + buffer[k])  # tanh(x) = 1 - 2 / (1 + exp(2x))
            n[b, k] = candidate
            h_new[b, k] = candidate + rz[b, size + k] * (h[b, k] - candidate)


@njit(**COMPILE_OPTIONS)
def gru_cell_backward(d_h_new, h, rz, n, gh, d_gi, d_gh):
    """Gradients of the gate pre-activations given d loss / d h_new (the previous state is a constant):
    writes ``d_gi`` and ``d_gh`` [B, 3H] (they differ in the n block only: d_gh_n = d_gi_n * r)."""
    batch, size = h.shape
    for b in range(batch):
        for k in range(size):
            r = rz[b, k]
            z = rz[b, size + k]
            candidate = n[b, k]
            grad = d_h_new[b, k]
            d_pre_n = grad * (_ONE - z) * (_ONE - candidate * candidate)
            d_r = d_pre_n * gh[b, 2 * size + k] * r * (_ONE - r)
            d_z = grad * (h[b, k] - candidate) * z * (_ONE - z)
            d_gi[b, k] = d_r
            d_gh[b, k] = d_r
            d_gi[b, size + k] = d_z
            d_gh[b, size + k] = d_z
            d_gi[b, 2 * size + k] = d_pre_n
            d_gh[b, 2 * size + k] = d_pre_n * r


# -- sampling -------------------------------------------------------------------------------------
@njit(**COMPILE_OPTIONS)
def guided_search(cdf, guide, uniform, out):
    """``out[k] = searchsorted(cdf, uniform[k], right=True)`` through a guide table: slice ``j`` of
    [0, 1) in ``len(guide) - 1`` equal slices holds the answers ``guide[j]`` .. ``guide[j + 1]``, where
    ``guide[j]`` counts the cdf entries <= j / slices; the few candidates of a slice are scanned."""
    slices = guide.shape[0] - 1
    for k in range(uniform.shape[0]):
        u = uniform[k]
        j = min(int(u * slices), slices - 1)
        answer = guide[j]
        end = guide[j + 1]
        while answer < end and cdf[answer] <= u:
            answer += 1
        out[k] = answer


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for float32, so that the first training step is not
    timed with the compilation in it (a few seconds on a new machine, well under one once cached)."""
    if not AVAILABLE:
        return
    f32 = np.float32
    rows = np.array([1, 0, 1], dtype=np.int64)
    table = np.zeros((2, 3), dtype=f32)
    state = np.zeros((2, 6), dtype=f32)
    bias, bias_state = np.zeros((2, 1), dtype=f32), np.zeros((2, 2), dtype=f32)
    first_entry = np.full(2, -1, dtype=np.int64)
    scalars = (f32(0.1), f32(0.1), f32(1e-6))
    adagrad_momentum_rows(
        table, state, rows, np.ones((3, 3), f32), bias, bias_state, np.ones((2, 1), f32), first_entry, *scalars
    )
    adagrad_momentum_dense(table.reshape(-1), state.reshape(2, -1), np.ones(6, f32), *scalars)
    cross_entropy_rows(np.zeros((2, 3), f32), np.arange(2), np.log(1e-24))
    bpr_max_rows(np.zeros((2, 3), f32), f32(0.5), f32(0.5), f32(1e-24), 0)
    h = np.zeros((2, 3), dtype=f32)
    gates, rz = np.zeros((2, 9), dtype=f32), np.zeros((2, 6), dtype=f32)
    gru_cell_forward(gates, gates, h, h.copy(), rz, h.copy())
    gru_cell_backward(h, h, rz, h, gates, gates.copy(), gates.copy())
    guided_search(
        np.array([0.5, 1.0]), np.array([0, 1, 2], dtype=np.int64), np.array([0.25, 0.75]), np.empty(2, np.int64)
    )

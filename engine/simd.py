"""16-lane float32 vectors as values in numba code (one AVX-512 register; two AVX2 ones elsewhere).

numba vectorises loops on its own, but a matrix product whose accumulators live in arrays keeps
loading and storing them; holding them in ``F32x16`` locals keeps them in registers. Only what the
fast sampler needs: unaligned load/store at a flat offset of a 1-D float32 array, broadcast,
arithmetic, min/max, exp, tanh and horizontal sum/max. Loaded only where numba is installed.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from . import jitcache  # noqa: F401  (before any cached njit: see engine.jitcache)

LANES = 16
_F = ir.FloatType()
_V = ir.VectorType(_F, LANES)
_I = ir.VectorType(ir.IntType(32), LANES)
_FAST = ("fast",)


class F32x16(types.Type):
    def __init__(self) -> None:
        super().__init__(name="f32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type) -> None:
        super().__init__(dmm, fe_type, _V)


def _address(context, builder, arrty, arr, offset):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [offset]), _V.as_pointer())


def _splat(builder, x):
    v = builder.insert_element(ir.Constant(_V, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(_V, ir.Undefined), ir.Constant(_I, [0] * LANES))


def _call(builder, name, *args):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V, [_V] * len(args)), name)
    return builder.call(fn, args)


@intrinsic
def vload(typingctx, arr, offset):
    """``arr[offset:offset + 16]`` of a contiguous 1-D float32 array (no bounds check)."""
    def codegen(context, builder, sig, args):
        return builder.load(_address(context, builder, sig.args[0], args[0], args[1]), align=4)
    return f32x16(arr, types.intp), codegen


@intrinsic
def vstore(typingctx, arr, offset, v):
    """``arr[offset:offset + 16] = v`` (no bounds check)."""
    def codegen(context, builder, sig, args):
        builder.store(args[2], _address(context, builder, sig.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()
    return types.none(arr, types.intp, f32x16), codegen


@intrinsic
def vsplat(typingctx, x):
    """All lanes ``x`` (a float32)."""
    def codegen(context, builder, sig, args):
        return _splat(builder, args[0])
    return f32x16(types.float32), codegen


def _binary(build):
    @intrinsic
    def op(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return build(builder, *args)
        return f32x16(f32x16, f32x16), codegen
    return op


vadd = _binary(lambda b, x, y: b.fadd(x, y, flags=_FAST))
vsub = _binary(lambda b, x, y: b.fsub(x, y, flags=_FAST))
vmul = _binary(lambda b, x, y: b.fmul(x, y, flags=_FAST))
vdiv = _binary(lambda b, x, y: b.fdiv(x, y))  # exact: the draw divides by T as numpy does
vmax = _binary(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y, flags=_FAST), x, y))
vmin = _binary(lambda b, x, y: b.select(b.fcmp_ordered("<", x, y, flags=_FAST), x, y))


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` (one fused instruction where the CPU has it)."""
    def codegen(context, builder, sig, args):
        return builder.fadd(builder.fmul(args[0], args[1], flags=_FAST), args[2], flags=_FAST)
    return f32x16(f32x16, f32x16, f32x16), codegen


def _reduce(combine):
    @intrinsic
    def op(typingctx, v):
        def codegen(context, builder, sig, args):
            v = args[0]
            width = LANES
            while width > 1:  # halve: lanes [w/2, w) onto [0, w/2)
                width //= 2
                lanes = [width + i if i < width else 0 for i in range(LANES)]
                upper = builder.shuffle_vector(v, ir.Constant(_V, ir.Undefined), ir.Constant(_I, lanes))
                v = combine(builder, v, upper)
            return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))
        return types.float32(f32x16), codegen
    return op


hsum = _reduce(lambda b, x, y: b.fadd(x, y, flags=_FAST))
hmax = _reduce(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y, flags=_FAST), x, y))

_EXP_LO, _EXP_HI = -87.33654, 88.0
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
          5.0000001201e-1)


@intrinsic
def vexp(typingctx, x):
    """e**x per lane, |relative error| ≲ 2 ulp on [-87.3, 88.7] (clamped outside): the Cephes expf."""
    def codegen(context, builder, sig, args):
        def c(value):
            return ir.Constant(_V, [float(np.float32(value))] * LANES)

        def fma(a, b, d):
            return builder.fadd(builder.fmul(a, b, flags=_FAST), d, flags=_FAST)

        x = args[0]
        x = builder.select(builder.fcmp_ordered(">", x, c(_EXP_HI)), c(_EXP_HI), x)
        x = builder.select(builder.fcmp_ordered("<", x, c(_EXP_LO)), c(_EXP_LO), x)
        n = _call(builder, "llvm.floor.v16f32", fma(x, c(1.44269504088896341), c(0.5)))
        # x - n·ln2 in two parts, without contraction, so the reduced argument stays exact
        x = builder.fsub(x, builder.fmul(n, c(0.693359375)))
        x = builder.fsub(x, builder.fmul(n, c(-2.12194440e-4)))
        y = c(_EXP_P[0])
        for coefficient in _EXP_P[1:]:
            y = fma(y, x, c(coefficient))
        y = fma(y, builder.fmul(x, x, flags=_FAST), builder.fadd(x, c(1.0), flags=_FAST))
        scale = builder.shl(builder.add(builder.fptosi(n, _I), ir.Constant(_I, [127] * LANES)),
                            ir.Constant(_I, [23] * LANES))
        return builder.fmul(y, builder.bitcast(scale, _V), flags=_FAST)
    return f32x16(f32x16), codegen


_TANH_CLAMP = np.float32(7.90531110763549805)
_A = tuple(np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                   5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                   -2.76076847742355e-16))
_B = tuple(np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                   1.19825839466702e-06))


@njit(inline="always", cache=True)
def vtanh(x):
    """tanh per lane by a rational minimax approximation, |error| < 4e-7 (float32 rounding level)."""
    x = vmin(vmax(x, vsplat(-_TANH_CLAMP)), vsplat(_TANH_CLAMP))
    x2 = vmul(x, x)
    p = vsplat(_A[6])
    for coefficient in (_A[5], _A[4], _A[3], _A[2], _A[1], _A[0]):
        p = vfma(p, x2, vsplat(coefficient))
    q = vsplat(_B[3])
    for coefficient in (_B[2], _B[1], _B[0]):
        q = vfma(q, x2, vsplat(coefficient))
    return vdiv(vmul(p, x), q)

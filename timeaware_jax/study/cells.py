"""The study's remedy names, importable without the training stack.

R1 positional time channel, R2 operand bias init, R3 fewer GroupNorm groups
(G = 8, 4 and 1 in torchdiffeq's terms for the neural ODE), R4 the field's
scale-shift after the norm; see DESIGN.md.
"""

REMEDIES = (
    "baseline",
    "positional",
    "bias_init",
    "fewer_groups",
    "fewer_groups4",
    "fewer_groups1",
    "scale_shift",
)

"""The model zoo's files, shipped inside the package: architecture configs (``*.yaml``),
pretrained models (``<name>.pt``) and their cards (``<name>.md``).

Resolution by name lives in :mod:`eqna.models.zoo`; ``eqna-zoo`` (``python -m eqna.zoo``) lists
and shows them.
"""

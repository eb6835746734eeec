"""The project: its configuration, the files to check, and the steps it defines.

``_config`` reads ``[tool.zart-lint]``, ``_discovery`` walks the paths with the
excludes, ``_index`` indexes the step and durable definitions of the whole
project (with ``ast``, not libcst). Nothing here imports libcst.
"""

# The Lambda runtime's Python (python3.12): bytecode must be compiled by that exact minor version, and the
# venv uses it too. pyenv's 3.12 when pyenv has one (its `python3.12` shim may point elsewhere), else
# python3.12 on PATH. Included by the project Makefile and by build/Makefile (run by `sam build`).
PYTHON312 ?= $(shell (pyenv root >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V | tail -1) || command -v python3.12)

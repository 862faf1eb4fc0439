"""`python -m vox.lsp`: the language server on stdio (the same as `voxc lsp`)."""

import sys

from vox.cli.lsp import main

sys.exit(main())

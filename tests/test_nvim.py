"""A real editor against `voxc lsp`: headless neovim's built-in LSP client opens a file with an
error and must receive its diagnostic. CI installs Debian's `neovim`; without `nvim` this skips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.test_lsp import server_command

NVIM = shutil.which("nvim")

INIT = r"""
local out, cmd = OUT, CMD
local function finish(result)
  local f = io.open(out, 'w'); f:write(vim.json.encode(result)); f:close()
  vim.cmd('qall!')
end
-- the APIs of neovim 0.7 (Debian's), which later versions keep: start_client + buf_attach_client
vim.api.nvim_create_autocmd('BufReadPost', { pattern = '*.vox', callback = function(ev)
  local id = vim.lsp.start_client({ name = 'voxc', cmd = cmd, root_dir = vim.fn.fnamemodify(ev.file, ':p:h') })
  vim.lsp.buf_attach_client(ev.buf, id)
end })
vim.api.nvim_create_autocmd('DiagnosticChanged', { callback = function(ev)
  local found = vim.diagnostic.get(ev.buf)
  if #found > 0 then
    local d = found[1]
    finish({ code = d.code, message = d.message, lnum = d.lnum, col = d.col, source = d.source })
  end
end })
-- a safety net only: a missing diagnostic ends the test as a failure instead of hanging it
vim.defer_fn(function() finish({ timeout = true }) end, 30000)
"""


@pytest.mark.skipif(NVIM is None, reason="neovim (`nvim`) is not installed; CI installs Debian's `neovim`")
def test_neovim_receives_a_diagnostic(tmp_path):
    program = tmp_path / "broken.vox"
    program.write_text(
        'provider sim = sim { clearance: [public] }\n'
        'model tiny = sim/"sim-small" { context: 8_192, max_output: 256, price: free }\n'
        'agent greeter(name: str) -> str {\n'
        '  model: tiyn\n'
        '  prompt: "Greet {name} 👋"\n'
        '}\n',
        encoding="utf-8",
    )
    out = tmp_path / "result.json"
    init = tmp_path / "init.lua"
    init.write_text(INIT.replace("OUT", json.dumps(str(out))).replace("CMD", lua_list(server_command())))
    subprocess.run(
        [NVIM, "--headless", "--clean", "-u", str(init), str(program)],
        check=True, timeout=60, stdin=subprocess.DEVNULL, capture_output=True,
    )
    result = json.loads(out.read_text())
    log = tmp_path / "lsp.log"
    if log.exists():
        print(log.read_text())
    assert result.get("timeout") is None, "neovim received no diagnostic from voxc lsp"
    assert result["code"] == "V1001" and "tiyn" in result["message"]
    assert (result["lnum"], result["col"]) == (3, len("  model: "))
    assert result["source"] == "voxc"


def lua_list(items: list[str]) -> str:
    return "{" + ", ".join(json.dumps(i) for i in items) + "}"

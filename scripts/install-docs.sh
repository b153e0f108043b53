#!/usr/bin/env bash
# Installs a man page and shell completions (bash, zsh, fish) for every
# tool, generated from the same definitions as their --help:
#
#   scripts/install-docs.sh [PREFIX]        (default: ~/.local)
#
# Man pages go to PREFIX/share/man/man1, completions to the usual
# PREFIX/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}.
# Uses the tools on PATH (after `cargo install --locked --path .`), or
# those in PLC_BIN=DIR.
set -euo pipefail
prefix=${1:-$HOME/.local}
bin=${PLC_BIN:+$PLC_BIN/}
man=$prefix/share/man/man1
bash_dir=$prefix/share/bash-completion/completions
zsh_dir=$prefix/share/zsh/site-functions
fish_dir=$prefix/share/fish/vendor_completions.d
mkdir -p "$man" "$bash_dir" "$zsh_dir" "$fish_dir"
for tool in plc-export plc-dedup plc-chunk plc-seal plc-verify plc-serve plc-clone plc-diff plc-audit plc-index plc-did; do
    "${bin}$tool" --generate-man >"$man/$tool.1"
    "${bin}$tool" --generate-completions bash >"$bash_dir/$tool"
    "${bin}$tool" --generate-completions zsh >"$zsh_dir/_$tool"
    "${bin}$tool" --generate-completions fish >"$fish_dir/$tool.fish"
done
echo "install-docs: man pages in $man; completions for bash, zsh and fish under $prefix/share"
echo "install-docs: try 'man $man/plc-seal.1'; add $prefix/share/man to MANPATH if man does not find them"

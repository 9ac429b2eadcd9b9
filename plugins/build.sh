#!/usr/bin/env bash
# Build every plugin of this workspace for wasm32-wasip2 (release) and lay them out for the host:
#   <out>/<name>/{plugin.toml,<crate>.wasm}           built-in plugins   (plugins/<name>/plugin.toml)
#   <out>/testing/<name>/{plugin.toml,<crate>.wasm}   hostile/test plugins (plugins/testing/<name>/plugin.toml)
# Each installed plugin.toml gets the sha256 of its component.
# Usage: plugins/build.sh [OUT_DIR]     (default: plugins/target/dist)
# Honours CARGO_TARGET_DIR (default: plugins/target). Extra cargo flags can be passed in CARGO_FLAGS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/target/dist}"
target_dir="${CARGO_TARGET_DIR:-$here/target}"

# shellcheck disable=SC2086
cargo build --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" ${CARGO_FLAGS:-}

# The value of a top-level `key = "value"` line of a plugin.toml.
manifest_value() {
    sed -n "s/^$2[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1
}

mkdir -p "$out"
count=0
while IFS= read -r manifest; do
    dir="$(dirname "$manifest")"
    rel="${dir#"$here"/}"
    name="$(manifest_value "$manifest" name)"
    wasm="$(manifest_value "$manifest" wasm)"
    if [[ -z "$name" || -z "$wasm" ]]; then
        echo "build.sh: $manifest: missing name or wasm" >&2
        exit 1
    fi
    src="$target_dir/wasm32-wasip2/release/$wasm"
    if [[ ! -f "$src" ]]; then
        echo "build.sh: $manifest names wasm = \"$wasm\", but $src was not built" >&2
        exit 1
    fi
    case "$rel" in
        testing/*) dest="$out/testing/$name" ;;
        *) dest="$out/$name" ;;
    esac
    mkdir -p "$dest"
    cp "$src" "$dest/$wasm"
    # Pin the component in the installed manifest (the host requires sha256 for plugins loaded from a
    # directory): insert it after the top-level `wasm = ...` line, before any [table].
    sum="$(sha256sum "$src" | cut -d' ' -f1)"
    if grep -q '^sha256[[:space:]]*=' "$manifest"; then
        cp "$manifest" "$dest/plugin.toml"
    else
        sed "/^wasm[[:space:]]*=/a sha256 = \"$sum\"" "$manifest" > "$dest/plugin.toml"
    fi
    printf '%-28s %8d bytes  -> %s\n' "$name" "$(stat -c %s "$src")" "$dest"
    count=$((count + 1))
done < <(find "$here" -path "$target_dir" -prune -o -path "$here/target" -prune -o -name plugin.toml -print | sort)

echo "build.sh: $count plugins in $out"

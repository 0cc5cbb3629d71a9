# Sourced by the benchmarks that serve a store written by berth-bench-scale:
# one account with one key, a work dir removed on exit, and scale() to write
# the store (its arguments are passed on).
KEY=AKIABENCHSCALE000000
SECRET=bench-scale-secret
ACCOUNT=777777777777
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "$ACCOUNT"
keys = [{ access_key_id = "$KEY", secret_access_key = "$SECRET" }]
TOML

scale() {
  ./target/release/berth-bench-scale --berth ./target/release/berth --data-dir "$work/data" \
    --config "$work/config.toml" --access-key-id "$KEY" --secret-access-key "$SECRET" --account "$ACCOUNT" "$@"
}

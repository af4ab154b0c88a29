#!/usr/bin/env bash
# Makes sure the Erlang/Elixir toolchain baton builds and tests with is on PATH.
# Used by `npm test`, `npm run demo` and CI. Installs from Debian packages when
# missing and running as root; otherwise stops with the exact command to run.
set -euo pipefail

packages=(erlang-nox erlang-dev elixir rebar3)
install_cmd="apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"

missing=()
for tool in erl erlc rebar3 elixir mix; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done

check_otp() {
  local otp
  otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
  if [ "$otp" -lt 25 ]; then
    echo "baton: Erlang/OTP $otp found on PATH; baton needs OTP 25 or newer." >&2
    exit 1
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  check_otp
  exit 0
fi

echo "baton: missing ${missing[*]} (Erlang/OTP 25+, Elixir and rebar3 are needed)." >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "baton: installing with: $install_cmd" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
  for tool in erl erlc rebar3 elixir mix; do
    command -v "$tool" >/dev/null 2>&1 || { echo "baton: $tool still missing after install" >&2; exit 1; }
  done
  check_otp
  exit 0
fi

echo "baton: run this as root, then try again:" >&2
echo "  sudo sh -c '$install_cmd'" >&2
exit 1

#!/usr/bin/env bash
# Install the real S3 clients the interop tests (tests/s3/test_interop_*.py) drive, and print
# their versions. Idempotent: what is already there is left alone.
#
#   tools/ci_setup.sh VENV      e.g. tools/ci_setup.sh .venv
#
# - awscli, s3cmd, minio: pip packages, normally installed with the test extras
#   (pip install -e '.[test]'); installed here into VENV only if missing, at the same pins.
# - rclone: Debian package (apt-get update, then apt-get install rclone). An apt failure is
#   reported and tolerated: the rclone tests then skip, saying why.
# - libisal2: Debian package; s3free computes parity with it when present (byte-identical to
#   zfec, several times faster) and the test that proves the two agree runs only with it.
set -uo pipefail

venv=${1:?usage: tools/ci_setup.sh VENV}
py="$venv/bin/python"
[ -x "$py" ] || { echo "ci_setup: no python at $py" >&2; exit 2; }

# Keep these in step with the test extras in pyproject.toml.
pins=("awscli>=1.46.3,<2" "s3cmd>=2.4.0,<3" "minio>=7.2.20,<8")

missing=()
for pin in "${pins[@]}"; do
    name=${pin%%[<>=]*}
    "$py" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$pin")
done
if [ ${#missing[@]} -gt 0 ]; then
    if ! "$py" -m pip install -q "${missing[@]}" >/tmp/ci_setup_pip.log 2>&1; then
        echo "ci_setup: pip install ${missing[*]} failed (log: /tmp/ci_setup_pip.log)" >&2
        tail -5 /tmp/ci_setup_pip.log >&2
        exit 1
    fi
fi

debs=()
command -v rclone >/dev/null 2>&1 || debs+=(rclone)
ldconfig -p 2>/dev/null | grep -q 'libisal\.so\.2' || debs+=(libisal2)
if [ ${#debs[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if $sudo apt-get update -qq >/tmp/ci_setup_apt.log 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${debs[@]}" \
            >>/tmp/ci_setup_apt.log 2>&1; then
        :
    else
        echo "ci_setup: apt-get install ${debs[*]} failed; the tests that need them will skip" \
            "(log: /tmp/ci_setup_apt.log)" >&2
        tail -3 /tmp/ci_setup_apt.log >&2
    fi
fi

# What is installed (one line each).
echo "ci_setup: $("$venv/bin/aws" --version 2>&1 | cut -d' ' -f1)"
echo "ci_setup: s3cmd $("$venv/bin/s3cmd" --version 2>&1 | awk '{print $3}')"
echo "ci_setup: minio $("$py" -c 'import minio; print(minio.__version__)' 2>&1)"
echo "ci_setup: libisal2 $(ldconfig -p 2>/dev/null | grep -q 'libisal\.so\.2' && echo present || echo absent)"
if command -v rclone >/dev/null 2>&1; then
    echo "ci_setup: $(rclone version 2>/dev/null | head -1)"
else
    echo "ci_setup: rclone not installed (its tests skip)"
fi
exit 0

#!/usr/bin/env bash
# Make sure Java 17+ is there for the Spark engine's tests: installs Debian's headless JRE
# when no java is found and this runs as root. Prints the java version on stderr; exits 1
# when there is no Java and it cannot be installed (the Spark tests then skip, or fail in CI).
set -euo pipefail
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "java.sh: installing openjdk-17-jre-headless (apt-get)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2
  fi
fi
if command -v java >/dev/null 2>&1; then
  java -version 2>&1 | head -n 1 >&2
  exit 0
fi
echo "java.sh: no Java found and cannot install it" >&2
exit 1

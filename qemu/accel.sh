# Chooses the QEMU accelerator (sourced by qemu/run; bash).
#
# KVM is used only when a Linux guest demonstrably runs under it: /dev/kvm may exist, pass a trivial real-mode test,
# and still hang a guest kernel for good (nested virtualisation on cloud VMs: the kernel stops right after
# "Probing EDD", when it leaves real mode). So the probe boots CacheOS's own kernel under KVM with the same machine,
# CPU model and SMP count as a real boot, without an initrd and without a root device, and requires the kernel to
# get all the way to its "no root file system" panic (or to unpacking an initramfs) within a short deadline: that
# means it left real mode, brought up the CPUs, its timers and its consoles. Under a working KVM this takes one to
# three seconds; anything else means TCG.
#
# The verdict is cached per machine boot (boot id), QEMU binary and version, CPU and kernel, in
# ${CACHEOS_ACCEL_CACHE:-${XDG_RUNTIME_DIR:-/tmp}/cacheos-accel}, so it costs seconds once per session, not per boot.
#
# Inputs (environment): CACHEOS_ACCEL=auto|kvm|tcg forces either; CACHEOS_KVM_DEV (default /dev/kvm) and
# CACHEOS_PROBE_TIMEOUT (default 20 s) exist for the decision test (tests/vm/accel-test), which fakes QEMU.
# Output: choose_accel QEMU KERNEL sets ACCEL (kvm|tcg) and ACCEL_REASON (one line, empty for KVM and for forced
# choices) and ACCEL_PROBE_S (seconds the probe took, 0 when cached or not run).

# One line saying why TCG was chosen.
_accel_reason_hang="KVM is present but a guest kernel hangs under it (nested virtualisation?); using TCG, boots take about a minute"

# _accel_probe QEMU KERNEL: 0 when the kernel boots under KVM; otherwise 1 and the reason in _probe_reason.
_accel_probe() {
    local qemu=$1 kernel=$2 dev=${CACHEOS_KVM_DEV:-/dev/kvm} deadline=${CACHEOS_PROBE_TIMEOUT:-20}
    _probe_reason=
    if [[ ! -e "${dev}" ]]; then
        _probe_reason="KVM is not available (${dev} does not exist); using TCG, boots take about a minute"
        return 1
    fi
    if [[ ! -r "${dev}" || ! -w "${dev}" ]]; then
        _probe_reason="KVM is not usable (no read/write access to ${dev}; add yourself to group kvm); using TCG, boots take about a minute"
        return 1
    fi
    if [[ -z "${kernel}" || ! -r "${kernel}" ]]; then
        _probe_reason="no CacheOS kernel to test KVM with (${kernel:-image/out/cacheos.vmlinuz} missing; build the image first); using TCG"
        return 1
    fi
    local d pid t0 ok=1 status=
    d=$(mktemp -d)
    : > "${d}/serial"
    # The same machine, CPU model and CPU count as qemu/run uses for real boots. No initrd, no root: the kernel ends
    # in a panic and, with -no-reboot, QEMU exits; the probe normally stops it earlier, on the first matching line.
    # A subshell owns QEMU, so that an aborting QEMU is reported into qemu.out and not onto the terminal.
    ( "${qemu}" -accel kvm -cpu host -machine q35 -m 256 -smp "${CACHEOS_CPUS:-2}" -nodefaults -no-user-config \
        -display none -no-reboot -serial "file:${d}/serial" -kernel "${kernel}" \
        -append "console=ttyS0 earlyprintk=serial,ttyS0 ignore_loglevel panic=-1 nokaslr" </dev/null &
      echo $! > "${d}/pid"
      wait $! ) >"${d}/qemu.out" 2>&1 &
    pid=$!
    t0=${SECONDS}
    while (( SECONDS - t0 < deadline )); do
        if grep -aqE 'Kernel panic - not syncing|Unpacking initramfs|Freeing unused kernel' "${d}/serial"; then
            ok=0
            break
        fi
        if ! kill -0 "${pid}" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    if (( ok != 0 )) && ! kill -0 "${pid}" 2>/dev/null; then
        # QEMU ended by itself: either it refused KVM (error on its stderr) or the kernel finished too fast to poll.
        if grep -aqE 'Kernel panic - not syncing|Unpacking initramfs|Freeing unused kernel' "${d}/serial"; then
            ok=0
        else
            status=$(grep -v -m1 '^[[:space:]]*$' "${d}/qemu.out" | cut -c1-160)
        fi
    fi
    [[ -s "${d}/pid" ]] && kill -9 "$(cat "${d}/pid")" 2>/dev/null
    wait "${pid}" 2>/dev/null || true
    if (( ok != 0 )); then
        if [[ -n "${status}" ]]; then
            _probe_reason="KVM is present but QEMU cannot run a guest with it (${status% }); using TCG, boots take about a minute"
        elif grep -aq 'Linux version' "${d}/serial"; then
            _probe_reason="KVM is present but a guest kernel stops early under it (nested virtualisation?); using TCG, boots take about a minute"
        else
            _probe_reason=${_accel_reason_hang}
        fi
    fi
    rm -rf "${d}"
    return "${ok}"
}

# choose_accel QEMU KERNEL
choose_accel() {
    local qemu=$1 kernel=$2
    ACCEL=${CACHEOS_ACCEL:-auto}
    ACCEL_REASON=
    ACCEL_PROBE_S=0
    case "${ACCEL}" in
        kvm|tcg) return 0 ;;
        auto) ;;
        *) echo "qemu/run: CACHEOS_ACCEL must be auto, kvm or tcg" >&2; return 2 ;;
    esac
    local cache_dir=${CACHEOS_ACCEL_CACHE:-${XDG_RUNTIME_DIR:-/tmp}/cacheos-accel} key kstamp
    kstamp=missing
    [[ -n "${kernel}" && -r "${kernel}" ]] && kstamp=$(stat -L -c '%s-%Y-%i' "${kernel}")
    key=$( { cat /proc/sys/kernel/random/boot_id 2>/dev/null; echo "${qemu}"; stat -L -c '%s-%Y' "${qemu}" 2>/dev/null
             grep -m1 '^model name' /proc/cpuinfo 2>/dev/null; echo "${kernel}" "${kstamp}"
             echo "${CACHEOS_KVM_DEV:-/dev/kvm}" "${CACHEOS_CPUS:-2}"; } | sha256sum | cut -c1-32)
    if [[ -r "${cache_dir}/${key}" ]]; then
        IFS=$'\t' read -r ACCEL ACCEL_REASON < "${cache_dir}/${key}" || true
        [[ "${ACCEL}" == kvm || "${ACCEL}" == tcg ]] && return 0
    fi
    local t0=${EPOCHREALTIME}
    if _accel_probe "${qemu}" "${kernel}"; then
        ACCEL=kvm
        ACCEL_REASON=
    else
        ACCEL=tcg
        ACCEL_REASON=${_probe_reason}
    fi
    ACCEL_PROBE_S=$(awk -v a="${t0}" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }')
    # A missing kernel is not a verdict about this machine: do not cache it.
    if [[ "${kstamp}" != missing ]]; then
        mkdir -p "${cache_dir}" 2>/dev/null && printf '%s\t%s\n' "${ACCEL}" "${ACCEL_REASON}" > "${cache_dir}/${key}.tmp" \
            && mv -f "${cache_dir}/${key}.tmp" "${cache_dir}/${key}"
    fi
    return 0
}

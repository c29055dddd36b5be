# The scenarios of the test VM, sourced by /init (busybox sh). Each scenario_NAME is one boot,
# selected by contrast.scenario=NAME; its steps print the markers .ci/vm-cryptsetup expects
# (ok/check/fail are /init's). The host passes in, on the parameters disk (/params):
#   secret          the workload secret: lowercase hex of 64 random bytes, no newline
#   wrong-secret    another such secret
#   payload         random bytes written to the volume in the first boot
#   payload.sha256  their SHA-256, computed on the host
# The disks: /dev/vda (serial "data", the volume kept between boots) and, in the tamper boot,
# one small disk per tampered header (serials "tamper-cipher", "tamper-integrity",
# "tamper-keyslots").

SECRET_FILE=/contrast/secrets/workload-secret-seed
DONE_FILE=/done
MOUNT_POINT=/state
DATA=/dev/vda
# Upstream Contrast's luksFormat options (contrast_luks::cryptsetup::FORMAT_OPTIONS).
UPSTREAM_FORMAT="--type=luks2 --cipher=aes-xts-plain64 --pbkdf=argon2id --pbkdf-memory=10240
    --integrity=hmac-sha256 --integrity-no-wipe --sector-size=4096 --batch-mode"
# Bounds, in seconds, of an emulated (TCG) CPU: a format benchmarks argon2id for ~2 s and
# opening takes as long again.
DONE_WITHIN=180
EXIT_WITHIN=120

# The device-mapper name the initializer uses: the first 8 bytes of SHA-256(device path +
# mount point), in hex (upstream's).
mapping_for() {
    printf '%s%s' "$1" "$2" | sha256sum | cut -c1-16
}

# The secret file as the initializer's main run writes it: 0400, replaced atomically.
install_secret() {
    mkdir -p "${SECRET_FILE%/*}"
    cp "$1" "$SECRET_FILE.tmp"
    chmod 0400 "$SECRET_FILE.tmp"
    mv -f "$SECRET_FILE.tmp" "$SECRET_FILE"
}

# Nothing left open: no device-mapper device, no node but control in /dev/mapper, nothing
# mounted on the mount point.
no_mapping() {
    ! ls /sys/block | grep -q '^dm-' && [ "$(ls /dev/mapper)" = control ]
}
not_mounted() {
    ! grep -q " $MOUNT_POINT " /proc/mounts
}

# `mounted_from MAPPING`: the mount point is an ext4 mounted from /dev/mapper/MAPPING.
mounted_from() {
    grep -q "^/dev/mapper/$1 $MOUNT_POINT ext4 " /proc/mounts
}

# `elapsed_since START`: seconds since the `date +%s` START.
elapsed_since() {
    echo $(($(date +%s) - $1))
}

# `timed STEP REASON COMMAND...`: check, printing how long COMMAND took (TCG is slow; the log
# shows where the time goes).
timed() {
    step=$1 reason=$2
    shift 2
    start=$(date +%s)
    if "$@" >/tmp/"$step".log 2>&1; then
        echo "contrast-vm: $step took $(elapsed_since "$start") s"
        rm -f /tmp/"$step".log
        ok "$step"
    else
        fail "$step" "$reason"
    fi
}

# `has_lines FILE WHAT PATTERN...`: FILE (the output of WHAT) has a line matching each
# extended regular expression; the first one missing is named.
has_lines() {
    file=$1 what=$2
    shift 2
    for pattern in "$@"; do
        if ! grep -Eq "$pattern" "$file"; then
            echo "$what has no line matching $pattern"
            return 1
        fi
    done
}

# The header luksDump shows is upstream's: LUKS2, one keyslot (argon2id), one aes-xts-plain64
# segment with hmac(sha256) integrity and 4096-byte sectors.
header_is_upstream() {
    cryptsetup luksDump "$1" >/tmp/luksdump.txt 2>&1 || return 1
    sed 's/^/  luksDump: /' /tmp/luksdump.txt
    has_lines /tmp/luksdump.txt luksDump \
        '^Version:[[:space:]]+2$' \
        '^[[:space:]]+cipher:[[:space:]]+aes-xts-plain64$' \
        '^[[:space:]]+integrity:[[:space:]]+hmac\(sha256\)$' \
        '^[[:space:]]+sector:[[:space:]]+4096 \[bytes\]$' \
        '^[[:space:]]+PBKDF:[[:space:]]+argon2id$' || return 1
    keyslots=$(grep -Ec '^  [0-9]+: luks2$' /tmp/luksdump.txt)
    if [ "$keyslots" != 1 ]; then
        echo "luksDump shows $keyslots keyslots, expected 1"
        return 1
    fi
    rm -f /tmp/luksdump.txt
}

write_payload() {
    cp /params/payload "$MOUNT_POINT/payload" && sync
}

# `active_as_upstream MAPPING`: the open volume (the kernel's view, not the header's) is
# aes-xts-plain64 with hmac(sha256) integrity from dm-integrity, 4096-byte sectors.
active_as_upstream() {
    cryptsetup status "$1" >/tmp/status.txt 2>&1 || return 1
    sed 's/^/  status: /' /tmp/status.txt
    has_lines /tmp/status.txt "cryptsetup status" \
        '^[[:space:]]+type:[[:space:]]+LUKS2$' \
        '^[[:space:]]+cipher:[[:space:]]+aes-xts-plain64$' \
        '^[[:space:]]+integrity:[[:space:]]+hmac\(sha256\)$' \
        '^[[:space:]]+sector size:[[:space:]]+4096$' || return 1
    [ -e "/dev/mapper/$1_dif" ] || { echo "no dm-integrity device $1_dif"; return 1; }
    rm -f /tmp/status.txt
}

payload_intact() {
    [ "$(sha256sum "$MOUNT_POINT/payload" | cut -d' ' -f1)" = "$(cat /params/payload.sha256)" ]
}

# --- The initializer, run in the background as the secure-pv sidecar would be ---------------
# Its output goes to /tmp/initializer-RUN.log, its PID to /tmp/RUN.pid and, once it exited,
# its exit status to /tmp/RUN.rc.

# `start_initializer RUN DEVICE`
start_initializer() {
    rm -f "$DONE_FILE" /tmp/"$1".pid /tmp/"$1".rc
    (
        initializer cryptsetup --device-path "$2" --mount-point "$MOUNT_POINT" \
            >/tmp/initializer-"$1".log 2>&1 &
        echo $! >/tmp/"$1".pid
        wait $!
        echo $? >/tmp/"$1".rc
    ) &
    while [ ! -s /tmp/"$1".pid ]; do sleep 0.1; done
}

# `print_initializer_log RUN [PATTERN]`: its output (the lines matching PATTERN) on the console.
print_initializer_log() {
    if [ -n "${2:-}" ]; then
        grep -E "$2" /tmp/initializer-"$1".log
    else
        cat /tmp/initializer-"$1".log
    fi | sed 's/\x1b\[[0-9;]*m//g; s/^/  initializer: /'
}

# `last_words RUN`: the initializer's last line of output (its error), shortened.
last_words() {
    tail -n 1 /tmp/initializer-"$1".log | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-400
}

# `wait_for_done STEP RUN`: the done file appears while the initializer runs.
wait_for_done() {
    start=$(date +%s)
    while [ ! -e "$DONE_FILE" ]; do
        if [ -e /tmp/"$2".rc ]; then
            fail "$1" "the initializer exited with status $(cat /tmp/"$2".rc) before writing $DONE_FILE: $(last_words "$2")"
        fi
        if [ "$(elapsed_since "$start")" -ge $DONE_WITHIN ]; then
            fail "$1" "no $DONE_FILE within $DONE_WITHIN s"
        fi
        sleep 1
    done
    echo "contrast-vm: $DONE_FILE after $(elapsed_since "$start") s"
    ok "$1"
}

# `wait_for_exit STEP RUN [refusal]`: the initializer exits within EXIT_WITHIN seconds; its
# status is in $status. With "refusal", a done file is a failure at once (the volume was
# opened and mounted when it should have been refused).
wait_for_exit() {
    start=$(date +%s)
    while [ ! -e /tmp/"$2".rc ]; do
        if [ "${3:-}" = refusal ] && [ -e "$DONE_FILE" ]; then
            fail "$1" "the initializer wrote $DONE_FILE: it opened and mounted the volume"
        fi
        if [ "$(elapsed_since "$start")" -ge $EXIT_WITHIN ]; then
            fail "$1" "the initializer is still running after $EXIT_WITHIN s"
        fi
        sleep 1
    done
    status=$(cat /tmp/"$2".rc)
    echo "contrast-vm: the initializer exited with status $status after $(elapsed_since "$start") s"
}

# `stop_initializer STEP RUN`: SIGTERM; it must unmount, close and exit 0.
stop_initializer() {
    kill -TERM "$(cat /tmp/"$2".pid)"
    wait_for_exit "$1" "$2"
    [ "$status" = 0 ] || fail "$1" "exit status $status after SIGTERM, expected 0"
    ok "$1"
}

# `refused_before_open PREFIX RUN`: the initializer failed without opening anything.
refused_before_open() {
    wait_for_exit "$1-exit" "$2" refusal
    [ "$status" != 0 ] || fail "$1-exit" "exit status 0, expected a failure"
    ok "$1-exit"
    check "$1-no-done" "$DONE_FILE exists" test ! -e "$DONE_FILE"
    check "$1-no-mapping" "a device-mapper mapping is left: $(ls /dev/mapper)" no_mapping
    check "$1-not-mounted" "$MOUNT_POINT is mounted" not_mounted
}

# --- Scenarios with the initializer ----------------------------------------------------------

# Boot 1: a blank disk is formatted, mounted, written to, and closed on SIGTERM.
scenario_format() {
    mapping=$(mapping_for "$DATA" "$MOUNT_POINT")
    install_secret /params/secret
    start_initializer format "$DATA"
    wait_for_done format-done format
    check format-mounted "$MOUNT_POINT is not an ext4 from /dev/mapper/$mapping" \
        mounted_from "$mapping"
    check format-header "luksDump differs from upstream's format" header_is_upstream "$DATA"
    check format-active "the open volume is not dm-crypt over dm-integrity as upstream's" \
        active_as_upstream "$mapping"
    check format-write "cannot write the payload to $MOUNT_POINT" write_payload
    check format-write-readback "the payload read back differs" payload_intact
    stop_initializer format-sigterm format
    print_initializer_log format
    check format-unmounted "$MOUNT_POINT is still mounted" not_mounted
    check format-closed "a device-mapper mapping is left: $(ls /dev/mapper)" no_mapping
}

# Boot 2: the same disk and secret open again and hold the payload; then a wrong secret is
# refused by cryptsetup and leaves nothing behind.
scenario_reopen() {
    mapping=$(mapping_for "$DATA" "$MOUNT_POINT")
    install_secret /params/secret
    start_initializer reopen "$DATA"
    wait_for_done reopen-done reopen
    check reopen-mounted "$MOUNT_POINT is not an ext4 from /dev/mapper/$mapping" \
        mounted_from "$mapping"
    check reopen-active "the open volume is not dm-crypt over dm-integrity as upstream's" \
        active_as_upstream "$mapping"
    check reopen-payload "the payload's SHA-256 is not the host's" payload_intact
    stop_initializer reopen-sigterm reopen
    print_initializer_log reopen
    check reopen-unmounted "$MOUNT_POINT is still mounted" not_mounted
    check reopen-closed "a device-mapper mapping is left: $(ls /dev/mapper)" no_mapping

    install_secret /params/wrong-secret
    start_initializer wrong-secret "$DATA"
    refused_before_open wrong-secret wrong-secret
    print_initializer_log wrong-secret
    check wrong-secret-message "no 'No key available with this passphrase' in the output" \
        grep -q 'No key available with this passphrase' /tmp/initializer-wrong-secret.log
}

# `tampered KIND PATH PATTERN`: the initializer refuses the header on the disk with serial
# tamper-KIND, with a deviation at the JSON path PATH (an extended regex, PATTERN, finds it in
# the output), and opens nothing.
tampered() {
    device=$(disk "tamper-$1") || fail "tamper-$1-disk" "no disk with serial tamper-$1"
    start_initializer "tamper-$1" "$device"
    refused_before_open "tamper-$1" "tamper-$1"
    # What a reader of the log wants to see: the deviations and the refusal.
    print_initializer_log "tamper-$1" 'refus|deviat'
    check "tamper-$1-names-$2" "the output names no deviation at $2" \
        grep -Eq "$3" /tmp/initializer-tamper-"$1".log
    check "tamper-$1-says-refused" "the output has neither 'refused' nor 'deviation'" \
        grep -Eqi 'refused|deviation' /tmp/initializer-tamper-"$1".log
}

# Boot 3: headers that differ from upstream's format are refused before anything is opened.
# The disks are formatted here with the real cryptsetup (it needs device-mapper for
# dm-integrity), keyed by the real secret: only the header's shape is wrong.
scenario_tamper() {
    install_secret /params/secret
    # shellcheck disable=SC2086 # UPSTREAM_FORMAT is a list of options.
    timed tamper-cipher-format "luksFormat with aes-cbc-essiv:sha256 failed" \
        cryptsetup luksFormat --type=luks2 --cipher=aes-cbc-essiv:sha256 --key-size=256 \
        --pbkdf=argon2id --pbkdf-memory=10240 --integrity=hmac-sha256 --integrity-no-wipe \
        --sector-size=4096 --batch-mode --key-file="$SECRET_FILE" "$(disk tamper-cipher)"
    timed tamper-integrity-format "luksFormat without integrity failed" \
        cryptsetup luksFormat --type=luks2 --cipher=aes-xts-plain64 --pbkdf=argon2id \
        --pbkdf-memory=10240 --sector-size=4096 --batch-mode --key-file="$SECRET_FILE" \
        "$(disk tamper-integrity)"
    # shellcheck disable=SC2086
    timed tamper-keyslots-format "luksFormat with upstream's options failed" \
        cryptsetup luksFormat $UPSTREAM_FORMAT --key-file="$SECRET_FILE" "$(disk tamper-keyslots)"
    timed tamper-keyslots-add-key "luksAddKey failed" \
        cryptsetup luksAddKey --batch-mode --key-file="$SECRET_FILE" "$(disk tamper-keyslots)" \
        /params/wrong-secret

    tampered cipher segments.0.encryption 'segments\.0\.encryption'
    tampered integrity segments.0.integrity 'segments\.0\.integrity'
    # The count, or a keyslot other than 0 (keyslots.0.* would also match a key-size change).
    tampered keyslots keyslots '(^|[^.[:alnum:]])keyslots(: |\.[1-9])'
}

# --- The platform with the plain tools (.ci/vm-cryptsetup --plain) ---------------------------
# The same sequence by hand, without the initializer: proves the kernel, its modules,
# device-mapper with dm-crypt and dm-integrity, and the tools in the initramfs.

# `write_ext4_blocks DEVICE`: with --integrity-no-wipe no block of the volume has a valid tag
# until it is written, and reading one fails with EIO; mkfs.ext4 reads block 0 and the backup
# superblocks before it writes them. Upstream writes zeros to exactly those blocks first (their
# numbers from a dry run, `mkfs.ext4 -n`); so does this.
write_ext4_blocks() {
    blocks=$(mkfs.ext4 -F -n "$1" | sed -n '/Superblock backups stored on blocks:/,$p' |
        tail -n +2 | grep -Eo '[0-9]+')
    for block in 0 $blocks; do
        dd if=/dev/zero of="$1" bs=4096 count=1 seek="$block" oflag=direct 2>/dev/null || return 1
    done
    echo "zeroed blocks: 0 $blocks"
}

scenario_plain_format() {
    mapping=$(mapping_for "$DATA" "$MOUNT_POINT")
    install_secret /params/secret
    # shellcheck disable=SC2086
    timed plain-luksformat "luksFormat with upstream's options failed" \
        cryptsetup luksFormat $UPSTREAM_FORMAT --key-file="$SECRET_FILE" "$DATA"
    check plain-header "luksDump differs from upstream's format" header_is_upstream "$DATA"
    timed plain-open "cryptsetup open failed" \
        cryptsetup open --type=luks2 --key-file="$SECRET_FILE" "$DATA" "$mapping"
    check plain-active "the open volume is not dm-crypt over dm-integrity as upstream's" \
        active_as_upstream "$mapping"
    timed plain-ext4-blocks "cannot write the blocks mkfs.ext4 reads" \
        write_ext4_blocks "/dev/mapper/$mapping"
    timed plain-mkfs "mkfs.ext4 failed" mkfs.ext4 -q "/dev/mapper/$mapping"
    mkdir -p "$MOUNT_POINT"
    timed plain-mount "mount failed" mount -t ext4 "/dev/mapper/$mapping" "$MOUNT_POINT"
    check plain-mounted "$MOUNT_POINT is not an ext4 from /dev/mapper/$mapping" \
        mounted_from "$mapping"
    check plain-write "cannot write the payload" write_payload
    check plain-write-readback "the payload read back differs" payload_intact
    timed plain-umount "umount failed" umount "$MOUNT_POINT"
    timed plain-close "cryptsetup close failed" cryptsetup close "$mapping"
    check plain-closed "a device-mapper mapping is left: $(ls /dev/mapper)" no_mapping
}

scenario_plain_reopen() {
    mapping=$(mapping_for "$DATA" "$MOUNT_POINT")
    install_secret /params/secret
    timed plain-reopen "cryptsetup open failed" \
        cryptsetup open --type=luks2 --key-file="$SECRET_FILE" "$DATA" "$mapping"
    mkdir -p "$MOUNT_POINT"
    timed plain-remount "mount failed" mount -t ext4 "/dev/mapper/$mapping" "$MOUNT_POINT"
    check plain-payload "the payload's SHA-256 is not the host's" payload_intact
    timed plain-reumount "umount failed" umount "$MOUNT_POINT"
    timed plain-reclose "cryptsetup close failed" cryptsetup close "$mapping"
    check plain-reclosed "a device-mapper mapping is left: $(ls /dev/mapper)" no_mapping
    install_secret /params/wrong-secret
    if cryptsetup open --type=luks2 --key-file="$SECRET_FILE" "$DATA" "$mapping" \
        >/tmp/plain-wrong.log 2>&1; then
        fail plain-wrong-secret "the wrong secret opened the volume"
    fi
    check plain-wrong-secret "cryptsetup did not say 'No key available'" \
        grep -q 'No key available with this passphrase' /tmp/plain-wrong.log
    rm -f /tmp/plain-wrong.log
}

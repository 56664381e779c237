# shellcheck shell=sh
# Shell functions for installing and removing a unitgate app; sourced by
# deploy/install.sh (--app) and deploy/uninstall.sh (--app). POSIX sh.
#
# An app directory deploy/apps/NAME/ holds:
#   app.toml       -> /etc/unitgate/apps/NAME.toml         (root:root 0644; config)
#   *.service      -> $PREFIX/lib/systemd/system/          (root:root 0644)
#   *.target
#   lib/*          -> $PREFIX/lib/unitgate/apps/NAME/      (root:root 0755)
#   skeleton/...   -> /etc/unitgate/skel/NAME/...          (root:root 0644; config)
#   install.conf   account=, home=, dirs=, operators=, guard=no (KEY=VALUE;
#                  read, never sourced). operators=: groups whose members run
#                  unitgate as the account: /etc/sudoers.d/unitgate-app-NAME
# "@PREFIX@" in app.toml, units and lib files becomes $PREFIX.
#
# Bookkeeping in /var/lib/unitgate/apps/NAME/:
#   files          every non-config file installed (removed on uninstall)
#   configs        "<sha256>  <path>" of each config file as installed, to tell
#                  an operator's edit from our own previous version
#   dirs, account  from install.conf; created-account when we created it
# Expects from the caller: PREFIX, DESTDIR, say(), die().
#
# Root acts only where no other account can interfere (see "Where root may
# act" below and docs/deploy.md): every directory it writes in, and every
# one it removes from, is checked first, and an app's own directories are
# created, checked and purged as their owner below the first one it owns.
# shellcheck disable=SC2153  # PREFIX is set by the sourcing script

app_state_root=/var/lib/unitgate/apps

app_conf() { # key file
    sed -n "s/^$1=//p" "$2" | tail -n 1
}

# The helper's app-name rule, [a-z0-9][a-z0-9_-]{0,63}.
check_app_name() {
    case $1 in
        ''|[-_]*|*[!a-z0-9_-]*) die "invalid app name '$1' (must match [a-z0-9][a-z0-9_-]{0,63})" ;;
    esac
    [ ${#1} -le 64 ] || die "invalid app name '$1' (at most 64 characters)"
}

# --- Where root may act -------------------------------------------------------
#
# The rule: root never acts on a path that an account other than root can
# change. A directory is *trusted* when it is owned by root and not group- or
# world-writable; a path is trusted when every directory on it, from /, is.
# Then nobody but root can rename, replace or plant an entry anywhere along
# it, so checking each prefix with stat(1) (lstat: a link is seen as a link)
# cannot race with anyone, and root may create, write, chown or remove there.
# Below a directory an account owns, root acts only as that account
# (as_uid), so whatever links the account planted lead only where it could
# already write.

# writable_by_others MODE: MODE (stat %a, octal) has the group or other write bit.
writable_by_others() {
    case $1 in *[2367] | *[2367]?) return 0 ;; esac
    return 1
}

# walk PATH HOW: lstats PATH one component at a time from /. HOW is
#   follow    a link met in a trusted directory was placed by root, so it is
#             followed by hand (its target spliced in and walked the same way);
#   create    as follow, and a missing directory is created root:root 0755
#             (its parent is trusted, so nobody else can create or swap it);
#   nofollow  any link stops the walk (an app's directories must be real).
# Returns 0 when every directory on PATH, PATH included, is trusted; w_real
# is then PATH resolved. Otherwise 1, with w_at the entry that stopped the
# walk (its parent is trusted), w_rest the components after it ('' when it
# is the last), w_kind missing|symlink|notdir|owner|writable|loop, and
# w_uid, w_mode, w_type from its lstat.
walk() {
    w_rest=$1 w_real='' w_at=/ w_hops=0 w_uid='' w_mode='' w_type=''
    walk_stat / || return 1
    while :; do
        while :; do case $w_rest in /*) w_rest=${w_rest#/} ;; *) break ;; esac; done
        [ -n "$w_rest" ] || break
        w_comp=${w_rest%%/*}
        case $w_rest in */*) w_rest=${w_rest#*/} ;; *) w_rest= ;; esac
        case $w_comp in
            .) continue ;;
            ..) w_real=${w_real%/*}; continue ;;
        esac
        w_at=$w_real/$w_comp
        if ! w_stat=$(LC_ALL=C stat -c '%u:%a:%F' -- "$w_at" 2>/dev/null); then
            if [ "$2" = create ] && mkdir -m 0755 -- "$w_at" && chown root:root -- "$w_at"; then
                w_real=$w_at
                continue
            fi
            w_kind=missing w_type=''
            return 1
        fi
        w_uid=${w_stat%%:*} w_mode=${w_stat#*:} w_type=${w_stat#*:*:}
        w_mode=${w_mode%%:*}
        case $w_type in
            'symbolic link')
                if [ "$2" = nofollow ]; then w_kind=symlink; return 1; fi
                w_hops=$((w_hops + 1))
                [ "$w_hops" -le 40 ] || { w_kind=loop; return 1; }
                w_target=$(readlink -- "$w_at")
                case $w_target in /*) w_real='' ;; esac
                w_rest=$w_target/$w_rest ;;
            directory)
                walk_stat "$w_at" || return 1
                w_real=$w_at ;;
            *) w_kind=notdir; return 1 ;;
        esac
    done
    [ -n "$w_real" ] || w_real=/
}

# walk_stat DIR: DIR (known to be a directory) is trusted; else w_kind says why.
walk_stat() {
    if [ "$1" = / ]; then
        w_stat=$(LC_ALL=C stat -c '%u:%a' -- /) || { w_kind=missing; return 1; }
        w_uid=${w_stat%%:*} w_mode=${w_stat#*:} w_type=directory
    fi
    [ "$w_uid" = 0 ] || { w_kind=owner; return 1; }
    if writable_by_others "$w_mode"; then w_kind=writable; return 1; fi
}

# walk_why: what stopped the last walk, in words.
walk_why() {
    case $w_kind in
        missing) echo "$w_at does not exist" ;;
        symlink) echo "$w_at is a symbolic link (to $(readlink -- "$w_at")), not a directory" ;;
        notdir) echo "$w_at is a $w_type, not a directory" ;;
        owner) echo "$w_at is owned by $(uid_name "$w_uid"), not root" ;;
        writable) echo "$w_at is writable by its group or others (mode $w_mode)" ;;
        loop) echo "too many symbolic links at $w_at" ;;
    esac
}

uid_name() { # uid: "name (uid N)" or "uid N"
    u_name=$(getent passwd "$1" | cut -d: -f1)
    if [ -n "$u_name" ]; then echo "$u_name (uid $1)"; else echo "uid $1"; fi
}

# root_dir_ok DIR: root may write in DIR: it is on a trusted path, or the
# trusted path ends where the rest is missing (root_dir will create it).
# Unprivileged staging (DESTDIR, not root) acts with its own rights only.
root_dir_ok() {
    [ "$(id -u)" = 0 ] || return 0
    walk "$1" follow && return 0
    [ "$w_kind" = missing ]
}

# root_dir DIR: DIR exists on a trusted path (missing parts created
# root:root 0755), or the installer stops, naming what it refused.
root_dir() {
    if [ "$(id -u)" != 0 ]; then
        [ -d "$1" ] || install -d -m 0755 "$1"
        return 0
    fi
    walk "$1" create || die "refusing to write in $1: $(walk_why) (root writes only where every directory from / is root's and not group/world-writable)"
}

# as_uid UID SCRIPT [ARG]...: runs the sh SCRIPT as UID, numeric (the
# account may already be gone), with its primary group (nogroup without a
# passwd entry), no other groups, no new privileges, a fixed environment,
# in /. Whatever it does, UID could have done itself. Its output is the
# account's text: non-printable bytes become '?' before root shows them.
as_uid() {
    u_uid=$1 u_script=$2
    shift 2
    u_gid=$(getent passwd "$u_uid" | cut -d: -f4)
    [ -n "$u_gid" ] || u_gid=65534
    if u_out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
        setpriv --reuid="$u_uid" --regid="$u_gid" --clear-groups --no-new-privs -- \
        /bin/sh -c "cd / || exit 1
$u_script" unitgate-as-account "$@" 2>&1); then u_rc=0; else u_rc=$?; fi
    [ -z "$u_out" ] || printf '%s\n' "$u_out" | LC_ALL=C tr -c '[:print:]\n' '?'
    return "$u_rc"
}

# --- An app's own directories (install.conf home=, dirs=) ----------------------

# System directories an app's home= or dirs= may never name, nor anything at,
# in or above unitgate's own trees (check_app_path): handing one of them to a
# service account would hand it the system.
system_dirs='/ /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt
/nonexistent /opt /proc /root /run /sbin /srv /sys /tmp /usr /var
/usr/bin /usr/games /usr/include /usr/lib /usr/lib32 /usr/lib64 /usr/libexec
/usr/libx32 /usr/local /usr/sbin /usr/share /usr/src /usr/local/bin
/usr/local/etc /usr/local/games /usr/local/include /usr/local/lib
/usr/local/libexec /usr/local/man /usr/local/sbin /usr/local/share
/usr/local/src /var/backups /var/cache /var/lib /var/local /var/lock /var/log
/var/mail /var/opt /var/run /var/spool /var/tmp'

# check_app_path PATH: true when PATH may be an app directory; otherwise
# prints why not. Normalised (no //, ., .. or trailing /) so that no
# spelling of a system directory slips past the list.
check_app_path() {
    case $1 in
        /*) ;;
        *) echo "$1: not an absolute path"; return 1 ;;
    esac
    case $1 in
        */ | *//* | */./* | */../* | */. | */..)
            echo "$1: not a plain path (no //, ., .. or trailing /)"; return 1 ;;
    esac
    for c_sys in $system_dirs; do
        [ "$1" != "$c_sys" ] || { echo "$1: a system directory"; return 1; }
    done
    for c_own in /etc/unitgate /var/lib/unitgate /etc/sudoers.d /etc/systemd /boot /dev /proc /sys \
        "$PREFIX/bin" "$PREFIX/libexec/unitgate" "$PREFIX/lib/unitgate" "$PREFIX/lib/systemd"; do
        case $1/ in "$c_own"/*) echo "$1: inside $c_own"; return 1 ;; esac
        case $c_own/ in "$1"/*) echo "$1: holds $c_own"; return 1 ;; esac
    done
}

# say_lines TEXT: each line of TEXT as one of our messages.
say_lines() {
    [ -z "$1" ] || printf '%s\n' "$1" | while IFS= read -r s_line; do say "$s_line"; done
}

# Run by app_dir as the account, below a directory it owns ($1, whose parent
# is trusted): walks the rest of the path ($2) with lstat; every part that
# exists must be a real directory of the account. $3 check: only say what is
# wrong; make: create the missing last part and give the directory mode 0750.
# $4: the app's directories, one a line (a missing parent that is listed is
# created before its children, so check mode lets it pass).
# shellcheck disable=SC2016  # expanded by the account's shell, not ours
app_dir_as_account='cur=$1 rest=$2
while [ -n "$rest" ]; do
    comp=${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
    p=$cur/$comp
    if [ -L "$p" ]; then echo "$p is a symbolic link (to $(readlink -- "$p")), not a directory"; exit 1; fi
    if [ ! -e "$p" ]; then
        if [ -n "$rest" ]; then
            if [ "$3" = check ] && printf "%s\n" "$4" | grep -qxF -- "$p"; then exit 0; fi
            echo "its parent $p does not exist (list it in dirs= too)"; exit 1
        fi
        [ "$3" = make ] || exit 0
        mkdir -m 0750 -- "$p" || exit 1
        echo "created $p"; exit 0
    fi
    [ -d "$p" ] || { echo "$p is a $(stat -c %F -- "$p"), not a directory"; exit 1; }
    owner=$(stat -c %u -- "$p") || exit 1
    [ "$owner" = "$(id -u)" ] || { echo "$p is owned by uid $owner, not by the account"; exit 1; }
    cur=$p
done
if [ "$3" = make ] && [ "$(stat -c %a -- "$cur")" != 750 ]; then
    chmod 0750 -- "$cur" && echo "set $cur to mode 0750"
fi'

# app_dir DIR UID GID HOW: DIR (passed by check_app_path) becomes the app's
# directory: owned by the account (UID:GID; UID empty while the account does
# not exist yet), mode 0750. HOW check: print what would be refused, change
# nothing; make: do it. Where DIR's whole path is root's, root creates DIR,
# or hands over a root-owned DIR, and chowns exactly that entry: its parent
# is trusted, so nobody can swap it. Below a directory the account owns, the
# rest is checked and created as the account. Refused, with the reason on
# stdout: a link anywhere on the path, a non-directory, a directory of
# another owner, a root-owned one others can write.
app_dir() {
    if walk "$1" nofollow; then
        [ "$4" = make ] || return 0
        chown -h -- "$2:$3" "$1" && chmod 0750 -- "$1" || return 1
        say "gave $1 (root's until now) to $account"
        return 0
    fi
    if [ "$w_kind" = missing ]; then
        if [ -z "$w_rest" ]; then
            [ "$4" = make ] || return 0
            mkdir -m 0750 -- "$1" && chown -h -- "$2:$3" "$1" || return 1
            say "created $1"
            return 0
        fi
        if [ "$4" = check ] && printf '%s\n' "$app_dirs" | grep -qxF -- "$w_at"; then
            return 0
        fi
        echo "$1: its parent $w_at does not exist (list it in dirs= too)"
        return 1
    fi
    if [ "$w_kind" = owner ] && [ -n "$2" ] && [ "$w_uid" = "$2" ]; then
        if a_out=$(as_uid "$2" "$app_dir_as_account" "$w_at" "$w_rest" "$4" "$app_dirs"); then
            say_lines "$a_out"
            return 0
        fi
        echo "$1: $a_out"
        return 1
    fi
    if [ "$w_kind" = owner ]; then
        echo "$1: $w_at is owned by $(uid_name "$w_uid"), not by root or $account"
    else
        echo "$1: $(walk_why)"
    fi
    return 1
}

# Run as a directory's owner before removing $1's contents: the owner's
# directories that it made read-only (as Go's module cache does) become
# writable to it again; a link met is never followed (find -P, chmod of
# a directory find itself found).
# shellcheck disable=SC2016  # expanded by the account's shell, not ours
owner_unlock='unlock() {
    [ -L "$1" ] || chmod u+rwx -- "$1" 2>/dev/null
    find "$1" -mindepth 1 -type d ! -perm -u=rwx -exec chmod u+rwx -- {} \; 2>/dev/null
    return 0
}'

# Run by purge_owned as a directory's owner: removes everything inside $1
# (find -delete never follows a link, and -depth is implied).
# shellcheck disable=SC2016  # expanded by the account's shell, not ours
empty_as_owner=$owner_unlock'
unlock "$1"
find "$1" -mindepth 1 -delete'

# Run by purge_dir as the owner of $1 (a directory in a trusted parent):
# removes $1/$2, walking $2 with lstat. A link or non-directory on the way
# means the entry is not really inside the app's tree: it is left alone (the
# link itself goes when its own directory is purged). $3: the app directory,
# for the message.
# shellcheck disable=SC2016  # expanded by the account's shell, not ours
remove_as_owner=$owner_unlock'
cur=$1 rest=$2
while :; do
    comp=${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
    p=$cur/$comp
    [ -e "$p" ] || [ -L "$p" ] || exit 0
    [ -n "$rest" ] || break
    if [ -L "$p" ] || [ ! -d "$p" ]; then echo "skipped $3: $p is not a directory (not followed)"; exit 0; fi
    cur=$p
done
if [ -L "$p" ]; then
    rm -f -- "$p" && echo "removed the symbolic link $p (not what it points to)"
else
    [ ! -d "$p" ] || unlock "$p"
    rm -rf -- "$p" && echo "purged $p"
fi'

# purge_owned DIR UID: DIR is a directory owned by UID (not root) in a trusted
# parent: its contents are removed as UID, then root removes the empty DIR.
purge_owned() {
    if ! o_out=$(as_uid "$2" "$empty_as_owner" "$1"); then
        say "kept $1: removing its contents as $(uid_name "$2") failed: $o_out"
        return 1
    fi
    if ! rmdir -- "$1" 2>/dev/null; then
        say "kept $1: not empty after removing its contents as $(uid_name "$2")"
        return 1
    fi
    say "purged $1"
}

# purge_root_tree DIR: DIR is trusted, so every entry in it is root's doing:
# root unlinks each (never following it), empties a trusted subdirectory the
# same way and an account's subdirectory as purge_owned. Subshells keep each
# level's variables its own.
purge_root_tree() {
    r_failed=0
    for r_entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$r_entry" ] || [ -L "$r_entry" ] || continue
        if ! r_stat=$(LC_ALL=C stat -c '%u:%a:%F' -- "$r_entry"); then r_failed=1; continue; fi
        r_uid=${r_stat%%:*} r_mode=${r_stat#*:} r_type=${r_stat#*:*:}
        r_mode=${r_mode%%:*}
        if [ "$r_type" != directory ]; then
            rm -f -- "$r_entry" || r_failed=1
        elif [ "$r_uid" != 0 ]; then
            (purge_owned "$r_entry" "$r_uid") || r_failed=1
        elif writable_by_others "$r_mode"; then
            say "kept $r_entry: writable by its group or others (mode $r_mode); remove it by hand"
            r_failed=1
        else
            (purge_root_tree "$r_entry" && rmdir -- "$r_entry") || r_failed=1
        fi
    done
    return "$r_failed"
}

# purge_dir DIR: removes the app directory DIR and what is really inside it;
# never follows a link. Returns 1, having said why, when something had to
# stay.
purge_dir() {
    if walk "$1" nofollow; then
        if ! (purge_root_tree "$1") || ! rmdir -- "$1"; then
            say "kept $1: could not empty it"
            return 1
        fi
        say "purged $1"
        return 0
    fi
    case $w_kind in
        missing) return 0 ;;
        symlink | notdir)
            if [ -n "$w_rest" ]; then
                say "skipped $1: $(walk_why) (not followed)"
                return 0
            fi
            # In a trusted parent, so root's doing: the entry goes, never
            # what it points to.
            rm -f -- "$1" || return 1
            say "removed $1 (a $w_type, not a directory; not followed)"
            return 0 ;;
        owner)
            if [ -z "$w_rest" ]; then
                purge_owned "$1" "$w_uid"
                return
            fi
            if p_out=$(as_uid "$w_uid" "$remove_as_owner" "$w_at" "$w_rest" "$1"); then
                say_lines "$p_out"
                return 0
            fi
            say "kept $1: removing it as $(uid_name "$w_uid") failed: $p_out"
            return 1 ;;
    esac
    say "kept $1: $(walk_why); remove it by hand"
    return 1
}

# install_atomic DEST MODE < CONTENT: writes stdin beside DEST, fixes owner
# and mode, then renames it over DEST, so a running caller never sees half a
# file; says so only when something changed.
install_atomic() {
    dir=$(dirname "$1")
    root_dir "$dir"
    tmp=$(mktemp "$dir/.unitgate-install.XXXXXX")
    cat > "$tmp"
    chmod "$2" "$tmp"
    [ -n "$DESTDIR" ] || chown root:root "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1" && [ "$(stat -c %a:%u:%g "$tmp")" = "$(stat -c %a:%u:%g "$1")" ]; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$1"
        say "installed $1"
    fi
}

# install_subst SRC DEST MODE: SRC with @PREFIX@ replaced, atomically.
install_subst() {
    sed "s|@PREFIX@|$PREFIX|g" "$1" | install_atomic "$2" "$3"
}

# install_config SRC DEST STATE: like install_subst, but an operator's edit
# wins: if DEST exists, differs from SRC and is not the version we installed
# last time, the new version goes to DEST.new and DEST is left alone.
install_config() {
    dir=$(dirname "$2")
    root_dir "$dir"
    tmp=$(mktemp "$dir/.unitgate-install.XXXXXX")
    sed "s|@PREFIX@|$PREFIX|g" "$1" > "$tmp"
    chmod 0644 "$tmp"
    [ -n "$DESTDIR" ] || chown root:root "$tmp"
    new_sum=$(sha256sum < "$tmp" | cut -d' ' -f1)
    recorded=$(awk -v p="${2#"$DESTDIR"}" '$2 == p { print $1 }' "$3/configs" 2>/dev/null || true)
    if [ ! -e "$2" ]; then
        mv -f "$tmp" "$2"; say "installed $2"
    elif cmp -s "$tmp" "$2"; then
        rm -f "$tmp"
    elif [ -n "$recorded" ] && [ "$(sha256sum < "$2" | cut -d' ' -f1)" = "$recorded" ]; then
        mv -f "$tmp" "$2"; say "updated $2"
    else
        if [ -f "$2.new" ] && cmp -s "$tmp" "$2.new"; then
            rm -f "$tmp"
        else
            mv -f "$tmp" "$2.new"
        fi
        say "kept $2 (edited); the new version is $2.new: merge it by hand and delete it"
        new_sum=$recorded
    fi
    [ -z "$new_sum" ] || printf '%s  %s\n' "$new_sum" "${2#"$DESTDIR"}" >> "$3/configs.next"
}

# packaged PATH: true when the unitgate Debian package ships PATH (the kit in
# /usr/share/unitgate/deploy activating an app with PREFIX=/usr): that file
# is dpkg's, never ours to overwrite or remove.
packaged() {
    [ -z "$DESTDIR" ] && command -v dpkg-query >/dev/null 2>&1 \
        && dpkg-query -S "$1" 2>/dev/null | grep -q '^unitgate:'
}

# app_guard_path DIR: where the guard drop-in of DIR's app goes
# (docs/design/constant-cost.md): in the drop-in directory of the template
# app.toml's top-level `unit` names, or nothing without one.
guard_src=$here/deploy/systemd/50-unitgate-guard.conf
app_guard_path() {
    g_unit=$(awk '/^[[:space:]]*\[/ { exit }
        match($0, /^[[:space:]]*unit[[:space:]]*=[[:space:]]*"[A-Za-z0-9_.-]*@\.service"[[:space:]]*$/) {
            sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }' "$1/app.toml")
    [ -n "$g_unit" ] || return 0
    echo "/etc/systemd/system/$g_unit.d/50-unitgate-guard.conf"
}

# app_guard_wanted DIR GUARD: whether the template gets the guard. Only one
# whose [Install] keys, read as systemd reads sections (leading blanks, the
# same section more than once), are exactly WantedBy=multi-user.target: the
# guard's condition is the link that install makes, so with any other
# (another target, Alias=, Also=, RequiredBy=) the helper's fast path would
# enable an instance the guard then skips, or leave a link behind. Nor one
# whose install.conf says guard=no: an app whose instances other units
# start as a dependency (drdr-x's displays, pulled in by drdr-main@ and
# drdr-render@), which the guard would skip for not being enabled.
app_guard_wanted() {
    [ "$(app_conf guard "$1/install.conf")" != no ] || return 1
    g_template=$1/$(basename "$(dirname "$2")" .d)
    [ -f "$g_template" ] && [ -f "$guard_src" ] || return 1
    g_install=$(awk '{ sub(/^[[:space:]]+/, ""); sub(/[[:space:]]+$/, "") }
        /^\[/ { section = $0; next }
        section == "[Install]" && $0 != "" && $0 !~ /^[#;]/ { print }' "$g_template")
    [ "$g_install" = "WantedBy=multi-user.target" ]
}

install_app() {
    src=$(cd "$1" && pwd) || die "no app directory '$1'"
    name=$(basename "$src")
    check_app_name "$name"
    [ -f "$src/app.toml" ] || die "$src/app.toml is missing"
    [ -f "$src/install.conf" ] || die "$src/install.conf is missing"
    if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
        die "must run as root (or set DESTDIR to stage the files)"
    fi
    account=$(app_conf account "$src/install.conf")
    home=$(app_conf home "$src/install.conf")
    dirs=$(app_conf dirs "$src/install.conf")
    operators=$(app_conf operators "$src/install.conf")
    [ -n "$account" ] || die "$src/install.conf names no account="
    case $account in ''|-*|*[!a-z0-9_-]*) die "invalid account name '$account' in $src/install.conf" ;; esac
    # Group names only, each checked: they are written into a sudoers file.
    # The characters first, before the words are split: no glob can expand.
    [ -z "$(printf '%s' "$operators" | tr -d 'a-z0-9_ -')" ] \
        || die "install.conf: operators= holds group names (a-z 0-9 _ -) separated by spaces (got '$operators')"
    for g in $operators; do
        case $g in [a-z_]*) ;; *) die "invalid operators group '$g' in $src/install.conf" ;; esac
        case $g in *[!a-z0-9_-]*) die "invalid operators group '$g' in $src/install.conf" ;; esac
    done
    # Checked before the words are split: no glob or other shell character
    # can reach the loops below.
    [ -z "$(printf '%s' "$home $dirs" | tr -d 'A-Za-z0-9._/@+ -')" ] \
        || die "install.conf: home= and dirs= hold paths of letters, digits and . _ / @ + - only (got '$home $dirs')"
    # Byte order (LC_ALL=C), whatever the caller's locale: a parent sorts
    # before its children, so it is created first and purged last.
    # shellcheck disable=SC2086  # split on spaces, characters checked above
    app_dirs=$(printf '%s\n' $home $dirs | LC_ALL=C sort -u)
    live=yes; [ -z "$DESTDIR" ] || live=no
    state=$DESTDIR$app_state_root/$name
    unitdir=$PREFIX/lib/systemd/system

    # Everything is checked before anything changes: a refused app leaves
    # the system as it was.
    problems=
    for d in $app_dirs; do
        why=$(check_app_path "$d") || problems="$problems
$why"
    done
    for dest in "$DESTDIR$unitdir" "$DESTDIR$PREFIX/lib/unitgate/apps/$name" \
        "$DESTDIR/etc/unitgate/apps" "$DESTDIR/etc/unitgate/skel/$name" "$state"; do
        root_dir_ok "$dest" || problems="$problems
$dest: $(walk_why) (root writes only where every directory from / is root's and not group/world-writable)"
    done
    uid='' gid=''
    if [ $live = yes ] && [ -z "$problems" ]; then
        if getent passwd "$account" >/dev/null; then
            uid=$(id -u "$account") gid=$(id -g "$account")
            # Root's own directories are not an app's to be given.
            [ "$uid" != 0 ] || problems="account=$account: uid 0 (a service account is never root)"
        fi
        for d in $app_dirs; do
            why=$(app_dir "$d" "$uid" "$gid" check) || problems="$problems
$why"
        done
    fi
    if [ $live = yes ]; then
        for g in $operators; do
            getent group "$g" >/dev/null || problems="$problems
operators=$g: no such group (create it and add the operators first)"
        done
    fi
    if [ -n "$operators" ]; then
        # The rule names our CLI: it must be root's alone, and there.
        for d in "$DESTDIR$sudoers_dir" "$DESTDIR$bindir"; do
            root_dir_ok "$d" || problems="$problems
$d: $(walk_why)"
        done
        if [ $live = yes ] && [ ! -x "$bindir/unitgate" ]; then
            problems="$problems
operators=: $bindir/unitgate is not installed (PREFIX=$PREFIX: the rule would name it; use the PREFIX unitgate is installed under)"
        fi
        if [ $live = yes ] && [ -z "$(sudoers_checkers)" ]; then
            problems="$problems
operators=: neither visudo nor visudo-rs found to check the sudoers rule"
        fi
        for g in $operators; do
            grep -q "\"@$g\"" "$src/app.toml" || say "note: operators=$g, but \"@$g\" is not in app.toml's callers: sudo lets its members act as $account all the same; list it there too, so that the CLI and the helper agree"
        done
    fi
    if [ -n "$problems" ]; then
        printf '%s\n' "$problems" | sed '/^$/d; s/^/unitgate install: refusing /' >&2
        die "app $name not installed: nothing was changed"
    fi

    root_dir "$state"
    : > "$state/files.next"
    : > "$state/configs.next"

    # The service account: a system user with its own group, no login, in
    # group unitgate so it may call the helper through sudo.
    if [ $live = yes ]; then
        if ! getent passwd "$account" >/dev/null; then
            useradd --system --user-group --home-dir "${home:-/nonexistent}" --no-create-home \
                --shell /usr/sbin/nologin --comment "unitgate app $name" "$account"
            : > "$state/created-account"
            say "created service account $account"
        fi
        if getent group unitgate >/dev/null && ! id -nG "$account" | tr ' ' '\n' | grep -qx unitgate; then
            usermod -aG unitgate "$account"
            say "added $account to group unitgate"
        fi
        uid=$(id -u "$account") gid=$(id -g "$account")
    fi
    echo "$account" > "$state/account"

    # State directories: the account's, not readable by others. Sorted, so a
    # parent comes before its children.
    printf '%s\n' "$app_dirs" > "$state/dirs"
    if [ $live = yes ]; then
        for d in $app_dirs; do
            if ! made=$(app_dir "$d" "$uid" "$gid" make); then
                die "refusing $made (app $name half installed: fix it, then re-run)"
            fi
            [ -z "$made" ] || printf '%s\n' "$made"
        done
    fi

    : > "$state/templates"
    for unit in "$src"/*.service "$src"/*.target "$src"/*.socket "$src"/*.timer; do
        [ -f "$unit" ] || continue
        dest=$unitdir/$(basename "$unit")
        # Remember every template, packaged or not: uninstall stops its
        # instances (a running instance would keep the account busy).
        case $unit in *@.service) basename "$unit" >> "$state/templates" ;; esac
        packaged "$dest" && continue
        install_subst "$unit" "$DESTDIR$dest" 0644
        echo "$dest" >> "$state/files.next"
    done
    guard=$(app_guard_path "$src")
    if [ -n "$guard" ] && app_guard_wanted "$src" "$guard"; then
        install_atomic "$DESTDIR$guard" 0644 < "$guard_src"
        echo "$guard" >> "$state/files.next"
    elif [ -n "$guard" ] && [ -f "$DESTDIR$guard" ] && [ ! -L "$DESTDIR$guard" ] \
        && root_dir_ok "$DESTDIR$(dirname "$guard")" && cmp -s "$DESTDIR$guard" "$guard_src"; then
        # A guard an earlier version of the app got: its template no longer
        # qualifies, so the helper must go back to the old path.
        rm -f -- "$DESTDIR$guard"
        rmdir "$DESTDIR$(dirname "$guard")" 2>/dev/null || true
        say "removed $DESTDIR$guard (the template's [Install] is no longer exactly WantedBy=multi-user.target)"
    fi
    if [ -d "$src/lib" ]; then
        for f in "$src"/lib/*; do
            [ -f "$f" ] || continue
            dest=$PREFIX/lib/unitgate/apps/$name/$(basename "$f")
            packaged "$dest" && continue
            install_subst "$f" "$DESTDIR$dest" 0755
            echo "$dest" >> "$state/files.next"
        done
    fi

    root_dir "$DESTDIR/etc/unitgate/apps"
    install_config "$src/app.toml" "$DESTDIR/etc/unitgate/apps/$name.toml" "$state"
    if [ -d "$src/skeleton" ]; then
        root_dir "$DESTDIR/etc/unitgate/skel/$name"
        (cd "$src/skeleton" && find . -type f | sort) | while IFS= read -r f; do
            f=${f#./}
            install_config "$src/skeleton/$f" "$DESTDIR/etc/unitgate/skel/$name/$f" "$state"
        done
    fi
    mv -f "$state/files.next" "$state/files"
    mv -f "$state/configs.next" "$state/configs"
    # After the record: a rule that goes live is one uninstall knows of.
    install_operators "$name" "$account" "$operators" "$state"

    if [ $live = yes ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    say "app $name done (config /etc/unitgate/apps/$name.toml; units run as $account; nothing enabled)"
}

# install_operators NAME ACCOUNT GROUPS STATE: the sudo rule that lets the
# members of GROUPS run unitgate as ACCOUNT (an operator's command runs as
# the account, so that no operator ever opens what the account can write:
# ctl/src/handover.rs). The reverse is never granted. Placed as the core
# drop-in is (install.sh's place_sudoers); recorded in files (written
# already: the rule is added to it before it goes live), so that uninstall
# removes it. No groups: no file (one an earlier install of the app wrote
# is removed, as root_dir_ok'd /etc).
install_operators() {
    dest=$sudoers_dir/unitgate-app-$1
    if [ -z "$3" ]; then
        if [ -f "$DESTDIR$dest" ] && [ -f "$4/rule" ] && root_dir_ok "$DESTDIR$sudoers_dir"; then
            rm -f -- "$DESTDIR$dest" "$4/rule"
            say "removed $DESTDIR$dest (no operators= any more)"
        fi
        return 0
    fi
    echo "$dest" >> "$4/files"
    : > "$4/rule"
    o_rules=
    for g in $3; do
        o_rules="$o_rules%$g ALL=($2) NOPASSWD: $bindir/unitgate
"
    done
    # A here-document, not a pipe: place_sudoers's `die` ends the install.
    place_sudoers "unitgate-app-$1" <<EOF
# unitgate app $1: its operators run unitgate as its account $2
# (written by deploy/install.sh --app from operators= in install.conf).
$o_rules
EOF
}

# other_apps_of ACCOUNT NAME: the installed apps but NAME that run as
# ACCOUNT, by our own records (in the trusted $app_state_root).
other_apps_of() {
    for o_file in "$DESTDIR$app_state_root"/*/account; do
        [ -f "$o_file" ] || continue
        o_app=$(basename "$(dirname "$o_file")")
        [ "$o_app" != "$2" ] || continue
        [ "$(cat "$o_file")" != "$1" ] || printf '%s\n' "$o_app"
    done
}

# account_processes UID: "PID UNIT COMMAND" for each process whose real,
# effective or saved uid is UID (what userdel counts as the account being in
# use), a zombie's command in brackets. UNIT is the last part of the
# process's cgroup: the systemd unit (or session, user@UID.service) that owns
# it. The command line is the account's text: non-printable bytes become '?'.
account_processes() {
    for a_dir in /proc/[0-9]*; do
        awk -v u="$1" '/^Uid:/ { if ($2 == u || $3 == u || $4 == u) found = 1 }
            END { exit !found }' "$a_dir/status" 2>/dev/null || continue
        a_cg=$(sed -n 's/^0:://p' "$a_dir/cgroup" 2>/dev/null)
        a_cmd=$(tr '\0' ' ' < "$a_dir/cmdline" 2>/dev/null | cut -c 1-100 | sed 's/ *$//')
        [ -n "$a_cmd" ] || a_cmd="[$(cat "$a_dir/comm" 2>/dev/null)]"
        printf '%s %s %s\n' "${a_dir#/proc/}" "${a_cg##*/}" "$a_cmd"
    done | LC_ALL=C tr -c '[:print:]\n' '?'
}

# wait_account_idle ACCOUNT: waits, up to account_idle_secs, until no process
# runs as ACCOUNT, so that userdel can remove it. The app's units have been
# stopped (systemd ends their processes; `disable --now` returned when it
# was done), but the last of them can still be exiting or waiting to be
# reaped, and the account may run things outside the app (a login session,
# its user manager, a transient unit). Nothing is killed here: what stays is
# named with its unit, and the uninstall stops before anything is purged.
account_idle_secs=15
wait_account_idle() {
    i_uid=$(id -u "$1") || return 0
    i_end=$(( $(date +%s) + account_idle_secs ))
    i_said=no
    while i_left=$(account_processes "$i_uid") && [ -n "$i_left" ]; do
        if [ "$(date +%s)" -ge "$i_end" ]; then
            printf '%s\n' "$i_left" | sed 's/^/unitgate uninstall: still running as '"$1"': /' >&2
            die "app $name: account $1 still has processes ${account_idle_secs} s after its units were stopped (see above: PID UNIT COMMAND); stop them through systemd (systemctl stop UNIT, or loginctl terminate-user $1 for its sessions) and re-run; nothing was purged"
        fi
        if [ $i_said = no ]; then
            say "waiting up to ${account_idle_secs} s for the processes of $1 to end"
            i_said=yes
        fi
        sleep 0.1
    done
}

# The instances of unit template $1 (NAME@.service or NAME@.timer) that
# root has to stop and disable, a name a line: the ones systemd runs or has
# left failed, and the ones a link in /etc/systemd/system enables (a crashed
# delete can leave either alone). Only names that are instances of the
# template come out: any client can have systemd load an instance (and so
# lengthen an --all listing), and a file name can hold a newline.
template_instances() { # NAME@.SUFFIX
    ti_prefix=${1%@*} ti_suffix=${1##*.}
    {
        if [ -d /run/systemd/system ]; then
            systemctl list-units --plain --no-legend --full \
                --state=active,activating,deactivating,reloading,failed \
                "$ti_prefix@*.$ti_suffix" 2>/dev/null | awk '{ print $1 }'
        fi
        find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l \
            -name "$ti_prefix@?*.$ti_suffix" -printf '%f\n' 2>/dev/null
    } | grep -E "^$ti_prefix@[A-Za-z0-9:_.\\\\-]+\\.$ti_suffix\$" | sort -u
}

# Instance units of the templates an app installed (template_instances of
# each). Timer templates too (drdr-x's periodic restart): an operator's
# enabled timer must not be left linked to a removed unit.
app_instances() { # state-dir
    cat "$1/templates" "$1/files" 2>/dev/null | grep -E '@\.(service|timer)$' | while IFS= read -r path; do
        template_instances "$(basename "$path")"
    done | sort -u
}

uninstall_app() { # name purge(yes|no)
    name=$1
    check_app_name "$name"
    state=$DESTDIR$app_state_root/$name
    live=yes; [ -z "$DESTDIR" ] || live=no
    # Our own record decides what root removes, so it must be root's alone.
    if ! root_dir_ok "$state"; then
        die "refusing to read $state: $(walk_why) (it must be root's and not group/world-writable, like every directory above it)"
    fi
    [ -d "$state" ] || { say "app $name is not installed (no $state)"; return 0; }

    # Every directory root removes a file from is checked before anything
    # is removed: a refused uninstall changes nothing.
    problems=
    for list in files configs; do
        [ -f "$state/$list" ] || continue
        while read -r f f2; do
            [ -n "$f2" ] && f=$f2   # configs: "<sha256>  <path>"
            [ -n "$f" ] || continue
            root_dir_ok "$(dirname "$DESTDIR$f")" || problems="$problems
$DESTDIR$f: $(walk_why)"
        done < "$state/$list"
    done
    for dir in "$DESTDIR$PREFIX/lib/unitgate/apps/$name" "$DESTDIR/etc/unitgate/skel/$name"; do
        root_dir_ok "$dir" || problems="$problems
$dir: $(walk_why)"
    done
    if [ -n "$problems" ]; then
        printf '%s\n' "$problems" | sed '/^$/d; s/^/unitgate uninstall: refusing to remove /' >&2
        die "app $name not uninstalled: nothing was changed (root removes files only where every directory from / is root's and not group/world-writable)"
    fi

    if [ $live = yes ] && [ -d /run/systemd/system ]; then
        instances=$(app_instances "$state")
        if [ -n "$instances" ]; then
            # shellcheck disable=SC2086
            systemctl disable --now $instances >/dev/null 2>&1 || true
            # shellcheck disable=SC2086
            systemctl reset-failed $instances >/dev/null 2>&1 || true
            # shellcheck disable=SC2086
            say "stopped and disabled: $(printf '%s ' $instances)"
        fi
    fi

    if [ -f "$state/files" ]; then
        while IFS= read -r f; do
            if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then rm -f -- "$DESTDIR$f"; say "removed $DESTDIR$f"; fi
        done < "$state/files"
    fi
    # The guard's drop-in directory, if nothing else is in it.
    if [ -f "$state/files" ]; then
        grep '/50-unitgate-guard\.conf$' "$state/files" | while IFS= read -r f; do
            rmdir "$DESTDIR$(dirname "$f")" 2>/dev/null || true
        done
    fi
    rmdir "$DESTDIR$PREFIX/lib/unitgate/apps/$name" "$DESTDIR$PREFIX/lib/unitgate/apps" \
        "$DESTDIR$PREFIX/lib/unitgate" 2>/dev/null || true

    if [ -f "$state/configs" ]; then
        while read -r sum f; do
            [ -n "$f" ] || continue
            if [ ! -f "$DESTDIR$f" ]; then
                :
            elif [ "$2" = yes ] || [ "$(sha256sum < "$DESTDIR$f" | cut -d' ' -f1)" = "$sum" ]; then
                rm -f -- "$DESTDIR$f"; say "removed $DESTDIR$f"
            else
                say "kept $DESTDIR$f (edited; --purge removes it)"
            fi
            if [ "$2" = yes ] && [ -f "$DESTDIR$f.new" ]; then rm -f -- "$DESTDIR$f.new"; fi
        done < "$state/configs"
    fi
    if [ -d "$DESTDIR/etc/unitgate/skel/$name" ]; then
        find "$DESTDIR/etc/unitgate/skel/$name" -depth -type d -empty -delete 2>/dev/null || true
    fi
    rmdir "$DESTDIR/etc/unitgate/skel" 2>/dev/null || true

    account=$(cat "$state/account" 2>/dev/null || true)
    # Another installed app that runs as the same account (DrDr's three
    # do): the account stays for it, whoever created it.
    sharing=
    [ -z "$account" ] || sharing=$(other_apps_of "$account" "$name" | head -n 1)
    if [ "$2" = yes ]; then
        # The account's last processes are gone before its data is removed
        # (as the account) and the account itself.
        if [ $live = yes ] && [ -e "$state/created-account" ] && [ -n "$account" ] \
            && [ -z "$sharing" ] && getent passwd "$account" >/dev/null; then
            wait_account_idle "$account"
        fi
        # Deepest first. Each directory is purged without following a link,
        # its contents as its owner (numeric: the account may be gone).
        purge_failed=no
        if [ $live = yes ] && [ -f "$state/dirs" ]; then
            purge_list=$(LC_ALL=C sort -ru "$state/dirs")
            while IFS= read -r d; do
                [ -n "$d" ] || continue
                if ! why=$(check_app_path "$d"); then
                    say "kept $why (not an app directory)"
                    continue
                fi
                purge_dir "$d" || purge_failed=yes
            done <<EOF
$purge_list
EOF
        fi
        if [ $purge_failed = yes ]; then
            die "app $name: some data was kept (see above); its account and $state stay, so that a re-run can finish"
        fi
        # Only now: until its data is gone, the account is what it is removed as.
        if [ -n "$sharing" ] && [ -e "$state/created-account" ]; then
            # The app that stays inherits the marker: its purge removes it.
            : > "$DESTDIR$app_state_root/$sharing/created-account"
            say "kept service account $account: app $sharing runs as it too (its uninstall --purge removes it)"
        elif [ $live = yes ] && [ -e "$state/created-account" ] && [ -n "$account" ] \
            && getent passwd "$account" >/dev/null; then
            userdel "$account"
            if getent group "$account" >/dev/null; then groupdel "$account" 2>/dev/null || true; fi
            say "removed service account $account"
        fi
        rm -rf -- "$state"
    else
        if [ -f "$state/dirs" ]; then
            say "kept instance data and account $account: $(tr '\n' ' ' < "$state/dirs")(uninstall --app $name --purge removes them)"
        fi
        # Only what a later --purge needs stays (configs: edited files kept).
        rm -f -- "$state/files" "$state/rule"
    fi
    rmdir "$DESTDIR$app_state_root" "$DESTDIR/var/lib/unitgate" 2>/dev/null || true
    if [ $live = yes ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    say "app $name uninstalled"
}

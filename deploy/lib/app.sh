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
#   install.conf   account=, home=, dirs= (KEY=VALUE; read, never sourced)
# "@PREFIX@" in app.toml, units and lib files becomes $PREFIX.
#
# Bookkeeping in /var/lib/unitgate/apps/NAME/:
#   files          every non-config file installed (removed on uninstall)
#   configs        "<sha256>  <path>" of each config file as installed, to tell
#                  an operator's edit from our own previous version
#   dirs, account  from install.conf; created-account when we created it
# Expects from the caller: PREFIX, DESTDIR, say(), die().
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

# install_atomic DEST MODE < CONTENT: writes stdin beside DEST, fixes owner
# and mode, then renames it over DEST, so a running caller never sees half a
# file; says so only when something changed.
install_atomic() {
    dir=$(dirname "$1")
    [ -d "$dir" ] || install -d -m 0755 "$dir"
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
    [ -d "$dir" ] || install -d -m 0755 "$dir"
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
    [ -n "$account" ] || die "$src/install.conf names no account="
    case $account in ''|-*|*[!a-z0-9_-]*) die "invalid account name '$account' in $src/install.conf" ;; esac
    for d in $home $dirs; do
        case $d in /*) ;; *) die "install.conf: '$d' is not an absolute path" ;; esac
    done
    live=yes; [ -z "$DESTDIR" ] || live=no
    state=$DESTDIR$app_state_root/$name
    install -d -m 0755 "$DESTDIR/var/lib/unitgate" "$DESTDIR$app_state_root" "$state"
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
    fi
    echo "$account" > "$state/account"

    # State directories: owned by the account, not readable by others.
    : > "$state/dirs"
    for d in $home $dirs; do
        grep -qxF "$d" "$state/dirs" || echo "$d" >> "$state/dirs"
    done
    while IFS= read -r d; do
        if [ $live = yes ]; then
            [ -d "$d" ] || say "created $d"
            install -d -m 0750 -o "$account" -g "$account" "$d"
        fi
    done < "$state/dirs"

    unitdir=$PREFIX/lib/systemd/system
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
    if [ -d "$src/lib" ]; then
        for f in "$src"/lib/*; do
            [ -f "$f" ] || continue
            dest=$PREFIX/lib/unitgate/apps/$name/$(basename "$f")
            packaged "$dest" && continue
            install_subst "$f" "$DESTDIR$dest" 0755
            echo "$dest" >> "$state/files.next"
        done
    fi

    install -d -m 0755 "$DESTDIR/etc/unitgate" "$DESTDIR/etc/unitgate/apps"
    [ $live = no ] || chown root:root /etc/unitgate /etc/unitgate/apps
    install_config "$src/app.toml" "$DESTDIR/etc/unitgate/apps/$name.toml" "$state"
    if [ -d "$src/skeleton" ]; then
        install -d -m 0755 "$DESTDIR/etc/unitgate/skel" "$DESTDIR/etc/unitgate/skel/$name"
        (cd "$src/skeleton" && find . -type f | sort) | while IFS= read -r f; do
            f=${f#./}
            install_config "$src/skeleton/$f" "$DESTDIR/etc/unitgate/skel/$name/$f" "$state"
        done
    fi
    mv -f "$state/files.next" "$state/files"
    mv -f "$state/configs.next" "$state/configs"

    if [ $live = yes ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    say "app $name done (config /etc/unitgate/apps/$name.toml; units run as $account; nothing enabled)"
}

# Instance units of the templates an app installed: loaded ones and the
# ones enabled on disk (a crashed delete can leave either alone).
app_instances() { # state-dir
    cat "$1/templates" "$1/files" 2>/dev/null | grep '@\.service$' | while IFS= read -r path; do
        prefix=$(basename "$path" .service)   # NAME@
        systemctl list-units --all --plain --no-legend --full "${prefix}*.service" 2>/dev/null \
            | awk '{ print $1 }'
        find /etc/systemd/system -name "${prefix}?*.service" -exec basename {} \; 2>/dev/null
    done | grep -v '^●' | sort -u
}

uninstall_app() { # name purge(yes|no)
    name=$1
    check_app_name "$name"
    state=$DESTDIR$app_state_root/$name
    [ -d "$state" ] || { say "app $name is not installed (no $state)"; return 0; }
    live=yes; [ -z "$DESTDIR" ] || live=no

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
            if [ -e "$DESTDIR$f" ]; then rm -f -- "$DESTDIR$f"; say "removed $DESTDIR$f"; fi
        done < "$state/files"
    fi
    rmdir "$DESTDIR$PREFIX/lib/unitgate/apps/$name" "$DESTDIR$PREFIX/lib/unitgate/apps" \
        "$DESTDIR$PREFIX/lib/unitgate" 2>/dev/null || true

    if [ -f "$state/configs" ]; then
        while read -r sum f; do
            [ -n "$f" ] || continue
            if [ ! -e "$DESTDIR$f" ]; then
                :
            elif [ "$2" = yes ] || [ "$(sha256sum < "$DESTDIR$f" | cut -d' ' -f1)" = "$sum" ]; then
                rm -f -- "$DESTDIR$f"; say "removed $DESTDIR$f"
            else
                say "kept $DESTDIR$f (edited; --purge removes it)"
            fi
            if [ "$2" = yes ] && [ -e "$DESTDIR$f.new" ]; then rm -f -- "$DESTDIR$f.new"; fi
        done < "$state/configs"
    fi
    if [ -d "$DESTDIR/etc/unitgate/skel/$name" ]; then
        find "$DESTDIR/etc/unitgate/skel/$name" -depth -type d -empty -delete 2>/dev/null || true
    fi
    rmdir "$DESTDIR/etc/unitgate/skel" 2>/dev/null || true

    account=$(cat "$state/account" 2>/dev/null || true)
    if [ "$2" = yes ]; then
        if [ -f "$state/dirs" ]; then
            # Deepest first; each was created for this app.
            sort -r "$state/dirs" | while IFS= read -r d; do
                case $d in /|/var|/var/lib|/etc|/usr|/home|/srv|/opt) continue ;; esac
                if [ -d "$DESTDIR$d" ]; then rm -rf -- "$DESTDIR$d"; say "purged $DESTDIR$d"; fi
            done
        fi
        if [ $live = yes ] && [ -e "$state/created-account" ] && [ -n "$account" ] \
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
        rm -f -- "$state/files"
    fi
    rmdir "$DESTDIR$app_state_root" "$DESTDIR/var/lib/unitgate" 2>/dev/null || true
    if [ $live = yes ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    say "app $name uninstalled"
}

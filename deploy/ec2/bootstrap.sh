#!/usr/bin/env bash
# Installs othermail on a fresh Debian 12 or Ubuntu 24.04 machine from the checkout this script
# belongs to (README.md, "Deploy on one EC2 box"):
#
#   sudo git clone <repository> /opt/othermail/src
#   sudo /opt/othermail/src/deploy/ec2/bootstrap.sh mail.example.org
#
# Safe to run again, and meant to be: once certbot has the certificate (nginx then switches to
# HTTPS), and after every update (it reinstalls the package and the deployment files).
# It never overwrites /etc/othermail/othermail.env and never starts or restarts an othermail
# service: that is the operator's step.
set -euo pipefail
umask 022

PREFIX=/opt/othermail
VENV=$PREFIX/.venv
ETC=/etc/othermail
DATA=/var/lib/othermail
WEBROOT=/var/www/letsencrypt
PLACEHOLDER='othermail\.example\.com'

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)

usage() {
    cat <<USAGE
usage: bootstrap.sh [--smtp] [--no-mariadb] HOSTNAME

Installs othermail, its web site https://HOSTNAME/ and its services on this Debian 12 or
Ubuntu 24.04 machine. Run it as root, again after certbot, and after every update.

  --smtp        mail reaches this box by direct MX: enable othermail-smtp (port 25)
                instead of othermail-worker (SES receipt rule -> S3 -> SNS -> SQS)
  --no-mariadb  no local MariaDB: set OTHERMAIL_DATABASE_URL in $ETC/othermail.env yourself
USAGE
}

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bootstrap.sh: %s\n' "$*" >&2; exit 1; }

arguments="$*"
smtp=no
mariadb=yes
while [ $# -gt 0 ]; do
    case $1 in
        --smtp) smtp=yes ;;
        --no-mariadb) mariadb=no ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
[ $# -eq 1 ] || { usage >&2; exit 2; }
host=${1,,}
label='[a-z0-9]([a-z0-9-]*[a-z0-9])?'
[[ $host =~ ^$label(\.$label)+$ ]] || die "not a host name: $1"
[ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 $arguments"
if [ ! -f "$src/pyproject.toml" ] || [ ! -d "$src/web" ]; then
    die "$src is not an othermail checkout"
fi

# 1. Debian packages (only what is missing; no apt-get update when nothing is)
packages=(python3 python3-venv nginx uwsgi uwsgi-plugin-python3 certbot ca-certificates openssl)
if [ "$mariadb" = yes ]; then
    packages+=(mariadb-server)
fi
missing=()
for package in "${packages[@]}"; do
    # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# 2. the service user and its folders
if ! getent passwd othermail >/dev/null; then
    say "creating the system user othermail"
    useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin othermail
fi
install -d -o othermail -g othermail -m 0750 "$DATA"
install -d -o root -g othermail -m 0750 "$ETC"
install -d -m 0755 "$PREFIX" "$WEBROOT"

# 3. the package, in a venv of Debian's python3: uWSGI's python3 plugin is built for that Python
say "installing othermail from $src into $VENV"
system_python=$(/usr/bin/python3 -c 'import sys; print(sys.version)')
venv_python=$("$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || true)
if [ "$venv_python" != "$system_python" ]; then
    rm -rf "$VENV"  # missing, or made by another Python (say, before a release upgrade)
    /usr/bin/python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "${src}[mysql,postgres]"
# nginx serves the stylesheet from the installed package, whatever its Python version
static=$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("web").submodule_search_locations[0])')/static
[ -f "$static/style.css" ] || die "the installed package has no web/static ($static)"
ln -sfn "$static" "$PREFIX/static"

# 4. settings and database, once: the secrets are generated here and kept
if [ ! -f "$ETC/othermail.env" ]; then
    secret=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
    password=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(24))')
    if [ "$mariadb" = yes ]; then
        say "creating the MariaDB database othermail and its account"
        systemctl enable --now mariadb.service
        sed "s/__DB_PASSWORD__/$password/g" "$here/mariadb/setup.sql" | mariadb
    fi
    say "writing $ETC/othermail.env"
    sed -e "s/__SECRET_KEY__/$secret/" -e "s/__DB_PASSWORD__/$password/" -e "s/$PLACEHOLDER/$host/g" \
        "$here/othermail.env.example" >"$ETC/othermail.env.new"
    chown root:othermail "$ETC/othermail.env.new"
    chmod 0640 "$ETC/othermail.env.new"
    mv "$ETC/othermail.env.new" "$ETC/othermail.env"
fi

# 5. uWSGI, the systemd units and the operator command (rewritten on every run: change the
#    repository's copies, or use drop-ins: systemctl edit othermail-web)
say "installing the uWSGI configuration, the systemd units and othermail-admin"
install -m 0644 "$here/uwsgi/othermail.ini" "$ETC/uwsgi.ini"
install -m 0644 "$here"/systemd/othermail-*.service "$here"/systemd/othermail-*.timer /etc/systemd/system/
install -m 0755 "$here/othermail-admin" /usr/local/sbin/othermail-admin
systemctl daemon-reload
if [ "$smtp" = yes ]; then
    systemctl enable --quiet othermail-web.service othermail-smtp.service
    systemctl disable --quiet othermail-worker.service
else
    systemctl enable --quiet othermail-web.service othermail-worker.service
    systemctl disable --quiet othermail-smtp.service
fi
systemctl enable --quiet othermail-domains.timer  # re-checks users' domains every six hours, from the next boot

# 6. nginx: the ACME challenge alone until the certificate exists, then the HTTPS site
install -d -m 0755 /etc/letsencrypt/renewal-hooks/deploy
install -m 0755 "$here/certbot/deploy-hook.sh" /etc/letsencrypt/renewal-hooks/deploy/othermail-reload-nginx.sh
if [ -f "/etc/letsencrypt/live/$host/fullchain.pem" ]; then
    site=othermail.conf
else
    site=othermail-acme.conf
fi
say "installing the nginx site ($site) for $host"
sed "s/$PLACEHOLDER/$host/g" "$here/nginx/$site" >/etc/nginx/sites-available/othermail.conf
ln -sfn /etc/nginx/sites-available/othermail.conf /etc/nginx/sites-enabled/othermail.conf
rm -f /etc/nginx/sites-enabled/default  # it claims default_server too
nginx -t
systemctl enable --quiet nginx.service
systemctl reload-or-restart nginx.service

say "done"
if [ "$site" = othermail-acme.conf ]; then
    cat <<NEXT
Next: with DNS for $host pointing at this machine, get the certificate, then run this script again:
  certbot certonly --webroot -w $WEBROOT -d $host --email you@example.org --agree-tos --no-eff-email
  $0 $arguments
NEXT
else
    services="othermail-web othermail-$([ "$smtp" = yes ] && echo smtp || echo worker)"
    cat <<NEXT
https://$host/ is served by nginx. Next: review $ETC/othermail.env, then
  systemctl restart $services
  othermail-admin user create you@example.org --admin
NEXT
fi

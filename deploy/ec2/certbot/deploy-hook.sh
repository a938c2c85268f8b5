#!/bin/sh
# certbot deploy hook: after a certificate is renewed, nginx loads it (a reload: no connection
# is dropped). bootstrap.sh installs it as
# /etc/letsencrypt/renewal-hooks/deploy/othermail-reload-nginx.sh, where certbot runs it after
# every successful renewal (Debian's certbot.timer runs "certbot renew" twice a day).
set -eu
systemctl reload nginx

-- The othermail database and its account on the local MariaDB (Debian: apt-get install mariadb-server).
-- bootstrap.sh runs it with a generated password in place of __DB_PASSWORD__; by hand:
--   sed "s/__DB_PASSWORD__/$password/" deploy/ec2/mariadb/setup.sql | sudo mariadb
-- and put the same password in OTHERMAIL_DATABASE_URL (/etc/othermail/othermail.env).
-- Safe to run again: it creates what is missing and sets the password.

-- utf8mb4 throughout; the tables choose utf8mb4_bin themselves (models/base.py), the database
-- default matches them.
CREATE DATABASE IF NOT EXISTS othermail CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- 'localhost': connections from this machine, such as over the unix socket that
-- OTHERMAIL_DATABASE_URL names (/run/mysqld/mysqld.sock); never over the network.
CREATE USER IF NOT EXISTS 'othermail'@'localhost' IDENTIFIED BY '__DB_PASSWORD__';
ALTER USER 'othermail'@'localhost' IDENTIFIED BY '__DB_PASSWORD__';

-- Everything on this one database (the migrations create, alter and drop its tables,
-- indexes and its stored procedure), nothing on any other, no global privilege.
GRANT ALL PRIVILEGES ON othermail.* TO 'othermail'@'localhost';

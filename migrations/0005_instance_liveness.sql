-- 0005_instance_liveness: take over at once the tenants of an instance that provably died on
-- the same machine.
--
-- A killed instance's tenant leases (0003) lapse only after the lease time (request_timeout
-- + 10 s), because in general nobody can tell a dead instance from a slow or cut-off one. On
-- ONE machine somebody can: an instance started after it in the same kernel boot and the same
-- PID namespace sees whether its process still exists. So each instance records where it runs;
-- a heartbeat that finds such an instance whose pid is gone (kill(pid, 0) = ESRCH) shortens
-- that instance's leases to now() + request_timeout + 2 s (the margin by which a live owner
-- stops sending before its lease could lapse: the dead one's last request has reached WeChat
-- Pay or timed out by then) and forgets the instance, so the fair share no longer counts it.
--
-- Why this is safe: the same boot_id means pid numbers come from the same kernel run; the same
-- PID namespace (its inode, /proc/self/ns/pid) means the pid names the same process for both;
-- a namespace id can only be reused after every process in it has ended. A pid that was reused
-- by another process looks alive: then nothing changes and the lease lapses as before. NULLs
-- (older binaries, no /proc) never match.

ALTER TABLE callbackd.instances
  ADD COLUMN boot_id       text NULL,    -- /proc/sys/kernel/random/boot_id
  ADD COLUMN pid_namespace text NULL,    -- readlink /proc/self/ns/pid, e.g. pid:[4026531836]
  ADD COLUMN pid           integer NULL;

COMMENT ON COLUMN callbackd.instances.boot_id IS
  'The kernel boot the instance runs in; with pid_namespace and pid, lets another instance on the '
  'same machine prove it dead and take its tenants over without waiting for the leases to lapse.';

/**
 * The hostile agent's probe script (bash), shared by the provider-level and the end-to-end hostile suites.
 * Every line it prints is `PROBE <name>: ok` or `PROBE <name>: LEAK <detail>`.
 */
export function probeScript(o: { marks: string[]; loopbackPorts: number[]; bigFileBytes: number }): string {
  // The marks travel base64-encoded: the script's own command line must not contain them.
  const marks = Buffer.from(o.marks.join("\n") + "\n").toString("base64");
  const hostProcs = Buffer.from("vitest\npostgres:\n").toString("base64");
  const pat = "-f /tmp/.marks";
  return `
p() { echo "PROBE $1: $2"; }
echo ${marks} | base64 -d > /tmp/.marks; echo ${hostProcs} | base64 -d > /tmp/.hostprocs
if for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < "$f" 2>/dev/null; done | grep -q ${pat}; then p environ "LEAK a server secret in /proc"; else p environ ok; fi
hit=$(timeout 60 grep -r -l -s -I ${pat} / --exclude-dir=proc --exclude-dir=sys --exclude=.marks 2>/dev/null | head -3 | tr '\\n' ' ')
[ -n "$hit" ] && p files "LEAK in $hit" || p files ok
cap=$(awk '/CapEff/ {print $2}' /proc/self/status); [ "$cap" = 0000000000000000 ] && p caps ok || p caps "LEAK CapEff $cap"
[ "$(id -u)" != 0 ] && p uid ok || p uid "LEAK uid 0"
mkdir -p /tmp/m; mount -t tmpfs x /tmp/m 2>/dev/null && p mount "LEAK mounted tmpfs" || p mount ok
mknod /tmp/sda b 8 0 2>/dev/null && mount /tmp/sda /tmp/m 2>/dev/null && p mknod "LEAK mounted a device" || p mknod ok
mount -o remount,rw /usr 2>/dev/null && p remount "LEAK /usr remounted" || p remount ok
(touch /usr/probe || touch /usr/bin/probe || touch /etc/probe) 2>/dev/null && p write-system "LEAK wrote /usr or /etc" || p write-system ok
for port in ${o.loopbackPorts.join(" ")}; do
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && p "loopback-$port" "LEAK connected" || p "loopback-$port" ok
done
code=$(exec 3<>/dev/tcp/127.0.0.1/4780 2>/dev/null && { printf 'GET /api/runs HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3; head -1 <&3 | awk '{print $2}'; })
[ "$code" = 200 ] && p channel-api "LEAK the channel serves /api/runs" || p channel-api "ok ($code)"
n=$(ls -d /proc/[0-9]* | wc -l); others=$(grep -l -s -f /tmp/.hostprocs /proc/[0-9]*/cmdline | wc -l)
[ "$others" = 0 ] && p processes "ok ($n visible)" || p processes "LEAK sees $others host processes"
# Over the file-size limit (written to a tmpfs so the disk monitor does not stop the sandbox first).
(head -c ${o.bigFileBytes} /dev/zero > /dev/shm/big.bin) >/dev/null 2>&1; sz=$(stat -c %s /dev/shm/big.bin 2>/dev/null || echo 0); rm -f /dev/shm/big.bin
[ "$sz" -lt ${o.bigFileBytes} ] && p big-file "ok ($sz bytes)" || p big-file "LEAK wrote $sz bytes"
echo PROBES-DONE
`;
}

export function leaks(output: string): string[] {
  return output.split("\n").filter((l) => /^PROBE [\w-]+: LEAK/.test(l));
}

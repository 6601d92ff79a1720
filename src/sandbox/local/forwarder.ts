/**
 * The sandbox's side of the backend channel: a tiny program (plain CommonJS, no dependencies) that listens on
 * 127.0.0.1:<port> inside the sandbox's network namespace and pipes each connection to the backend's Unix socket.
 * Bounded: at most 64 connections at once.
 */
export const FORWARDER_SOURCE = `"use strict";
const net = require("net");
const [sock, port] = process.argv.slice(2);
let open = 0;
net.createServer((c) => {
  if (open >= 64) return c.destroy();
  open++;
  const s = net.connect(sock);
  const done = () => { c.destroy(); s.destroy(); };
  c.on("error", done); s.on("error", done);
  c.once("close", () => { open--; done(); }); s.once("close", done);
  c.pipe(s); s.pipe(c);
}).listen(Number(port), "127.0.0.1");
`;

/* Warden audit trail: verify a record in the browser from its inclusion proof.
 *
 * The page's "Verify" button fetches GET /api/v1/audit/records/<seq>/proof (same origin, session
 * cookie) and recomputes, with WebCrypto SHA-256 only:
 *   1. payload   sha256(UTF-8 payload) == payload_sha256
 *   2. record    sha256(0x00 || canonical entry) == leaf_hash
 *   3. Merkle    the audit path folded from that leaf (RFC 9162 2.1.3.2) == block merkle_root
 *   4. block     sha256(canonical block header) == block_hash
 * Canonical JSON here is RFC 8785 for what records hold (strings and integers): keys sorted by
 * UTF-16 code units, no whitespace, JSON.stringify's string escapes, non-ASCII left as is.
 * The same script toggles the payload rows (disclosure buttons).
 */
"use strict";

(() => {
  const STEPS = {
    payload: "Step 1 of 4 (payload)",
    leaf: "Step 2 of 4 (record)",
    path: "Step 3 of 4 (Merkle path)",
    block: "Step 4 of 4 (block)",
  };
  const encoder = new TextEncoder();

  class CheckFailed extends Error {
    constructor(step, message) {
      super(message);
      this.step = step;
    }
  }

  const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

  function fromHex(text, what) {
    if (typeof text !== "string" || !/^([0-9a-f]{2})+$/i.test(text)) {
      throw new Error(`the proof's ${what} is not hexadecimal`);
    }
    return Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const LEAF = Uint8Array.of(0x00);
  const NODE = Uint8Array.of(0x01);

  /* RFC 8785 for strings, integers, booleans, null, arrays and objects (no floats in entries). */
  function canonical(value) {
    if (Array.isArray(value)) {
      return `[${value.map(canonical).join(",")}]`;
    }
    if (value !== null && typeof value === "object") {
      const keys = Object.keys(value).sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
    }
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new Error("the proof holds a number that is not an integer");
    }
    return JSON.stringify(value);
  }

  /* What the leaf hashes: exactly these fields (audit.models.entry_bytes). */
  function entryOf(record) {
    return {
      seq: record.seq,
      at: record.at,
      actor: { kind: record.actor.kind, id: record.actor.id, label: record.actor.label },
      action: record.action,
      subject: { type: record.subject.type, id: record.subject.id },
      agent_id: record.agent_id,
      tool: record.tool,
      payload_sha256: record.payload_sha256,
    };
  }

  /* RFC 9162 section 2.1.3.2: the root an inclusion proof leads to, or null when it cannot hold. */
  async function rootFromPath(leafIndex, treeSize, leaf, path) {
    if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) {
      return null;
    }
    // BigInt: the shifts stay exact for any tree size.
    let fn = BigInt(leafIndex);
    let sn = BigInt(treeSize - 1);
    let node = leaf;
    for (const sibling of path) {
      if (sn === 0n) {
        return null;
      }
      if ((fn & 1n) === 1n || fn === sn) {
        node = await sha256(concat(NODE, sibling, node));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        node = await sha256(concat(NODE, node, sibling));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n ? node : null;
  }

  /* Runs the four checks on a proof document; resolves with what was proven, throws CheckFailed. */
  async function verifyProof(proof, expectedSeq) {
    const record = proof.record;
    const header = proof.block.header;
    if (record.seq !== expectedSeq) {
      throw new CheckFailed(STEPS.leaf, `the proof is for record ${record.seq}, not ${expectedSeq}`);
    }

    const payloadDigest = toHex(await sha256(encoder.encode(record.payload)));
    if (payloadDigest !== record.payload_sha256) {
      throw new CheckFailed(STEPS.payload, "the payload does not match its SHA-256 digest: the payload was changed");
    }

    const leaf = await sha256(concat(LEAF, encoder.encode(canonical(entryOf(record)))));
    if (toHex(leaf) !== proof.leaf_hash) {
      throw new CheckFailed(
        STEPS.leaf,
        `the record does not match the leaf sealed in block ${header.height}: a field of the record was changed`,
      );
    }

    const path = proof.audit_path.map((node, i) => fromHex(node, `audit path node ${i}`));
    // The tree size from the header: the header is what the block hash covers (proof.tree_size is not).
    const root = await rootFromPath(proof.leaf_index, header.size, leaf, path);
    if (root === null || toHex(root) !== header.merkle_root) {
      throw new CheckFailed(
        STEPS.path,
        `the audit path does not lead to the Merkle root of block ${header.height}: the block's records were changed`,
      );
    }

    const blockHash = toHex(await sha256(encoder.encode(canonical(header))));
    if (blockHash !== proof.block.block_hash) {
      throw new CheckFailed(STEPS.block, `the header of block ${header.height} does not match its block hash`);
    }
    return { height: header.height, root: header.merkle_root, blockHash, leafIndex: proof.leaf_index };
  }

  /* The verdict: a summary in bold, then one line per detail (a string or a list of strings). */
  function show(output, state, summary, detail) {
    output.className = `wd-verify-result wd-verify-${state}`;
    output.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = summary;
    output.append(strong);
    for (const line of [].concat(detail || [])) {
      const span = document.createElement("span");
      span.className = "wd-verify-detail";
      span.textContent = line;
      output.append(span);
    }
    const body = output.closest("tbody");
    if (body) {
      body.classList.toggle("wd-verified", state === "ok");
      body.classList.toggle("wd-tampered", state === "failed");
    }
  }

  async function fetchProof(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { response, body };
  }

  async function onVerify(button) {
    const seq = Number(button.dataset.seq);
    const output = document.getElementById(`verify-result-${seq}`);
    if (!window.isSecureContext || !window.crypto || !window.crypto.subtle) {
      show(
        output,
        "error",
        "Cannot verify here",
        "This browser offers WebCrypto only on secure pages: open Warden over HTTPS (or on localhost).",
      );
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    show(output, "busy", "Verifying\u2026", "");
    try {
      const { response, body } = await fetchProof(button.dataset.proofUrl);
      if (response.status === 409 && body && body.code === "not_sealed") {
        show(output, "pending", "Not sealed yet", "The sealer takes new records within seconds; try again shortly.");
        return;
      }
      if (!response.ok || !body) {
        const why = body && body.message ? body.message : `HTTP ${response.status}`;
        show(output, "error", "Could not fetch the proof", why);
        return;
      }
      const proven = await verifyProof(body, seq);
      show(
        output,
        "ok",
        `\u2713 Verified in block ${proven.height}`,
        [`Merkle root ${proven.root.slice(0, 16)}\u2026`, `block hash ${proven.blockHash.slice(0, 16)}\u2026`],
      );
      output.title = `Merkle root ${proven.root}\nBlock hash ${proven.blockHash}`;
    } catch (error) {
      if (error instanceof CheckFailed) {
        show(output, "failed", `\u2717 ${error.step} failed`, error.message);
      } else {
        show(output, "error", "\u2717 The proof could not be checked", String(error && error.message ? error.message : error));
      }
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  function onToggle(button) {
    const target = document.getElementById(button.getAttribute("aria-controls"));
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    button.firstChild.textContent = open ? "Hide" : "Show";
    target.hidden = !open;
  }

  document.addEventListener("click", (event) => {
    const verify = event.target.closest("button.wd-verify");
    if (verify) {
      onVerify(verify);
      return;
    }
    const toggle = event.target.closest("button.wd-toggle");
    if (toggle) {
      onToggle(toggle);
    }
  });

  // A link to /audit/?seq=N#verify-N (the admin's record page) verifies that record on arrival.
  document.addEventListener("DOMContentLoaded", () => {
    const match = /^#verify-(\d+)$/.exec(window.location.hash);
    const button = match && document.querySelector(`button.wd-verify[data-seq="${match[1]}"]`);
    if (button) {
      button.scrollIntoView({ block: "center" });
      onVerify(button);
    }
  });

  // Exposed for tests and for people checking the algorithm from the console.
  window.wardenAudit = { canonical, entryOf, rootFromPath, verifyProof };
})();

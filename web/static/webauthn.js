// The WebAuthn helpers shared by the passkey pages: passkey.js (add a
// passkey, sign in with one) and second-factor.js (a passkey as the second
// factor). Loaded before them from the same origin (script-src 'self'); it
// defines window.CommonsWebAuthn and nothing else.
(function () {
  "use strict";

  function toBytes(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toBase64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // post sends JSON and returns the JSON answer; a failure throws an Error
  // with the server's description and its code.
  async function post(url, body) {
    var resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body === undefined ? {} : body),
    });
    var data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      var err = new Error((data && data.error_description) || "The server answered " + resp.status + ".");
      err.code = data && data.error;
      throw err;
    }
    return data;
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
  }

  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: toBytes(pk.user.id) });
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return pk;
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.allowCredentials = descriptors(pk.allowCredentials);
    return pk;
  }

  // credentialJSON is the browser's answer in the JSON form the server reads.
  function credentialJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: { clientDataJSON: toBase64url(r.clientDataJSON) },
    };
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    if (r.attestationObject) {
      out.response.attestationObject = toBase64url(r.attestationObject);
      if (typeof r.getTransports === "function") {
        out.response.transports = r.getTransports();
      }
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      if (r.userHandle) {
        out.response.userHandle = toBase64url(r.userHandle);
      }
    }
    return out;
  }

  // text returns the page's translation of a message: the data-msg-<key>
  // attribute of el (set by the template), else the English fallback.
  // {what} in a message is replaced by what.
  function text(el, key, fallback, what) {
    var s = (el && el.dataset && el.dataset["msg" + key]) || fallback;
    return what === undefined ? s : s.replace("{what}", what);
  }

  // browserMessage explains a failed WebAuthn call; what names the action.
  function browserMessage(el, err, what) {
    if (err && err.name === "NotAllowedError") {
      return text(el, "Cancelled", "{what} was cancelled or timed out.", what);
    }
    if (err && err.name === "InvalidStateError") {
      return text(el, "Known", "This device already holds one of your passkeys.");
    }
    return (err && err.message) || text(el, "Failed", "{what} failed.", what);
  }

  function say(el, msg) {
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  window.CommonsWebAuthn = {
    supported: !!(window.PublicKeyCredential && navigator.credentials),
    toBytes: toBytes,
    toBase64url: toBase64url,
    post: post,
    creationOptions: creationOptions,
    requestOptions: requestOptions,
    credentialJSON: credentialJSON,
    text: text,
    browserMessage: browserMessage,
    say: say,
  };
})();

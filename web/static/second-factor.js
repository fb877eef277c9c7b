// The passkey as a second factor (/login/second-factor): after a correct
// password, the person may confirm with one of their passkeys instead of a
// code. The code form works without this script.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

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

  var section = document.getElementById("second-factor-passkey-section");
  if (!section) {
    return;
  }
  var button = document.getElementById("second-factor-passkey");
  var errorBox = document.getElementById("second-factor-passkey-error");
  section.hidden = false;
  button.addEventListener("click", async function () {
    errorBox.hidden = true;
    button.disabled = true;
    try {
      var options = await post("/login/second-factor/passkey/begin");
      var cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
      var done = await post("/login/second-factor/passkey/finish", credentialJSON(cred));
      window.location.assign(done.redirect);
    } catch (err) {
      errorBox.textContent = (err && err.name === "NotAllowedError") ? "Using the passkey was cancelled or timed out." : ((err && err.message) || "Using the passkey failed.");
      errorBox.hidden = false;
      button.disabled = false;
      if (err && err.code === "sign_in_expired") {
        window.location.assign("/login");
      }
    }
  });
})();

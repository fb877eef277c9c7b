// Passkeys: the only script of Commons ID. It drives the WebAuthn browser
// API for "Add a passkey" (/account/security) and "Sign in with a passkey"
// (/login). Every other form on those pages works without it.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials) {
    return; // the pages say passkeys need a supporting browser
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

  function browserMessage(err, what) {
    if (err && err.name === "NotAllowedError") {
      return what + " was cancelled or timed out.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This device already holds one of your passkeys.";
    }
    return (err && err.message) || what + " failed.";
  }

  function say(el, msg) {
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  // --- /account/security: Add a passkey ---
  var add = document.getElementById("passkey-add");
  if (add) {
    var unsupported = document.getElementById("passkey-unsupported");
    var addError = document.getElementById("passkey-error");
    var addStatus = document.getElementById("passkey-status");
    var addButton = document.getElementById("passkey-add-button");
    var reauth = document.getElementById("passkey-reauth");
    var password = document.getElementById("passkey-password");
    if (unsupported) {
      unsupported.hidden = true;
    }
    add.hidden = false;
    add.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      say(addError, "");
      addButton.disabled = true;
      try {
        addStatus.textContent = "Preparing…";
        var begin = {};
        if (!reauth.hidden && password.value) {
          begin.password = password.value;
        }
        var options = await post("/account/api/passkeys/register/begin", begin);
        addStatus.textContent = "Follow your browser's prompt to create the passkey.";
        var cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
        addStatus.textContent = "Saving…";
        var name = document.getElementById("passkey-name").value.trim();
        await post("/account/api/passkeys/register/finish?name=" + encodeURIComponent(name), credentialJSON(cred));
        window.location.assign("/account/security?done=passkey-added#passkeys");
      } catch (err) {
        addStatus.textContent = "";
        if (err.code === "reauth_required" || err.code === "reauth_failed") {
          reauth.hidden = false;
          password.required = true;
          password.focus();
        }
        say(addError, browserMessage(err, "Creating the passkey"));
      } finally {
        addButton.disabled = false;
      }
    });
  }

  // --- /login: Sign in with a passkey ---
  var section = document.getElementById("passkey-login-section");
  if (section) {
    var button = document.getElementById("passkey-login");
    var loginError = document.getElementById("passkey-login-error");
    var loginStatus = document.getElementById("passkey-login-status");
    section.hidden = false;
    button.addEventListener("click", async function () {
      say(loginError, "");
      button.disabled = true;
      try {
        var options = await post("/login/passkey/begin");
        loginStatus.textContent = "Follow your browser's prompt to use your passkey.";
        var cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
        loginStatus.textContent = "Signing in…";
        var back = document.querySelector('input[name="return_to"]');
        var q = back && back.value ? "?return_to=" + encodeURIComponent(back.value) : "";
        var done = await post("/login/passkey/finish" + q, credentialJSON(cred));
        window.location.assign(done.redirect);
      } catch (err) {
        loginStatus.textContent = "";
        say(loginError, browserMessage(err, "Signing in with a passkey"));
        button.disabled = false;
      }
    });
  }
})();

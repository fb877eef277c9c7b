// Passkeys: "Add a passkey" (/account/security) and "Sign in with a
// passkey" (/login), over the WebAuthn helpers of webauthn.js (loaded
// first). Every other form on those pages works without it.
(function () {
  "use strict";

  var w = window.CommonsWebAuthn;
  if (!w || !w.supported) {
    return; // the pages say passkeys need a supporting browser
  }
  var post = w.post, say = w.say, text = w.text;

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
        addStatus.textContent = text(add, "Preparing", "Preparing…");
        var begin = {};
        if (!reauth.hidden && password.value) {
          begin.password = password.value;
        }
        var options = await post("/account/api/passkeys/register/begin", begin);
        addStatus.textContent = text(add, "Prompt", "Follow your browser's prompt to create the passkey.");
        var cred = await navigator.credentials.create({ publicKey: w.creationOptions(options) });
        addStatus.textContent = text(add, "Saving", "Saving…");
        var name = document.getElementById("passkey-name").value.trim();
        await post("/account/api/passkeys/register/finish?name=" + encodeURIComponent(name), w.credentialJSON(cred));
        window.location.assign("/account/security?done=passkey-added#passkeys");
      } catch (err) {
        addStatus.textContent = "";
        if (err.code === "reauth_required" || err.code === "reauth_failed") {
          reauth.hidden = false;
          password.required = true;
          password.focus();
        }
        say(addError, w.browserMessage(add, err, text(add, "What", "Creating the passkey")));
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
        loginStatus.textContent = text(section, "Prompt", "Follow your browser's prompt to use your passkey.");
        var cred = await navigator.credentials.get({ publicKey: w.requestOptions(options) });
        loginStatus.textContent = text(section, "Signing", "Signing in…");
        var back = document.querySelector('input[name="return_to"]');
        var q = back && back.value ? "?return_to=" + encodeURIComponent(back.value) : "";
        var done = await post("/login/passkey/finish" + q, w.credentialJSON(cred));
        window.location.assign(done.redirect);
      } catch (err) {
        loginStatus.textContent = "";
        say(loginError, w.browserMessage(section, err, text(section, "What", "Signing in with a passkey")));
        button.disabled = false;
      }
    });
  }
})();

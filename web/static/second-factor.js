// The passkey as a second factor (/login/second-factor): after a correct
// password, the person may confirm with one of their passkeys instead of a
// code, over the WebAuthn helpers of webauthn.js (loaded first). The code
// form works without this script.
(function () {
  "use strict";

  var w = window.CommonsWebAuthn;
  if (!w || !w.supported) {
    return;
  }
  var post = w.post;

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
      var cred = await navigator.credentials.get({ publicKey: w.requestOptions(options) });
      var done = await post("/login/second-factor/passkey/finish", w.credentialJSON(cred));
      window.location.assign(done.redirect);
    } catch (err) {
      errorBox.textContent = w.browserMessage(section, err, w.text(section, "What", "Using the passkey"));
      errorBox.hidden = false;
      button.disabled = false;
      if (err && err.code === "sign_in_expired") {
        window.location.assign("/login");
      }
    }
  });
})();

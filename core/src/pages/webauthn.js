// mod_twofactor: the passkey and security key prompt of the challenge
// pages. Served by the module itself (CSP script-src 'self'); every other
// second factor works without it.
"use strict";
(function () {
  var box = document.getElementById("webauthn");
  if (!box) {
    return;
  }
  var form = box.querySelector("form");
  var button = document.getElementById("webauthn-start");
  var status = document.getElementById("webauthn-status");
  var ceremony = box.getAttribute("data-ceremony");

  function say(text) {
    status.textContent = text;
    status.hidden = false;
  }

  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    say("This browser cannot use passkeys or security keys. Use another way below, or another browser.");
    return;
  }

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeIds(list) {
    (list || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
  }

  function answer(credential) {
    var r = credential.response;
    var out = { id: credential.id, rawId: toText(credential.rawId), type: credential.type, extensions: {} };
    if (ceremony === "register") {
      out.response = {
        attestationObject: toText(r.attestationObject),
        clientDataJSON: toText(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined,
      };
    } else {
      out.response = {
        authenticatorData: toText(r.authenticatorData),
        clientDataJSON: toText(r.clientDataJSON),
        signature: toText(r.signature),
        userHandle: toText(r.userHandle),
      };
    }
    return JSON.stringify(out);
  }

  function explain(error) {
    switch (error && error.name) {
      case "NotAllowedError":
        return ceremony === "register"
          ? "The prompt was cancelled or timed out. Try again when you are ready."
          : "The prompt was cancelled or timed out, or no passkey of this account is on this device. " +
              "Try again, or use another way below.";
      case "InvalidStateError":
        return "This passkey or security key is registered already.";
      case "SecurityError":
        return "This page's address does not match the sign-in gateway's. Please tell your administrator.";
      case "NotSupportedError":
        return "This device offers no passkey or security key that this site accepts.";
      default:
        return (error && error.serverMessage) || "Something went wrong. Reload the page and try again.";
    }
  }

  function start() {
    button.disabled = true;
    say("Follow your browser's prompt.");
    var body = new URLSearchParams(new FormData(form));
    body.set("ceremony", ceremony);
    fetch(box.getAttribute("data-begin"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(
          function (json) {
            if (!response.ok) {
              throw { serverMessage: json.message };
            }
            return json;
          },
          function () {
            throw { serverMessage: "The server did not answer as expected. Reload the page and try again." };
          }
        );
      })
      .then(function (options) {
        var pk = options.publicKey;
        pk.challenge = toBytes(pk.challenge);
        if (ceremony === "register") {
          pk.user.id = toBytes(pk.user.id);
          decodeIds(pk.excludeCredentials);
          return navigator.credentials.create({ publicKey: pk });
        }
        decodeIds(pk.allowCredentials);
        return navigator.credentials.get({ publicKey: pk });
      })
      .then(function (credential) {
        form.elements.credential.value = answer(credential);
        say("Checking…");
        form.submit();
      })
      .catch(function (error) {
        button.disabled = false;
        say(explain(error));
      });
  }

  button.hidden = false;
  button.disabled = false;
  button.addEventListener("click", start);
})();

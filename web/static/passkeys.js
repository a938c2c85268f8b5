// Passkeys (WebAuthn) for othermail's forms; no inline script, so the pages keep their strict CSP.
//
// A form with data-passkey="register" carries its creation options (JSON) in data-options; a form
// with data-passkey="signin" or "second-factor" fetches request options from data-options-url.
// Either one posts the authenticator's answer, as JSON, to its action with the form's CSRF token
// in the X-CSRFToken header, and goes where the answer says ({"redirect": url}) or shows
// {"error": message} in its [data-passkey-error] element.
(function () {
  "use strict";

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBuffer(item.id) });
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      out.response.userHandle = toText(response.userHandle);
    }
    return out;
  }

  function csrfToken(form) {
    var field = form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function postJSON(url, form, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(form) },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(
        function (data) {
          if (!response.ok && !data.error) {
            data.error = "The request was refused (" + response.status + ").";
          }
          return data;
        },
        function () {
          return { error: "The request was refused (" + response.status + "). Reload the page and try again." };
        }
      );
    });
  }

  function showError(form, message) {
    var box = form.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function browserError(error) {
    if (error && error.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This device already holds a passkey for your account.";
    }
    return "The browser could not use a passkey" + (error && error.message ? ": " + error.message : ".");
  }

  function follow(form, data) {
    if (data.redirect) {
      window.location.assign(data.redirect);
    } else {
      showError(form, data.error || "Something went wrong. Try again.");
      form.removeAttribute("aria-busy");
    }
  }

  function nextField(form) {
    var field = form.querySelector("input[name=next]");
    return field ? field.value : "";
  }

  function register(form) {
    var options = creationOptions(JSON.parse(form.dataset.options));
    return navigator.credentials.create({ publicKey: options }).then(function (credential) {
      return postJSON(form.action, form, { credential: credentialJSON(credential) });
    });
  }

  function authenticate(form) {
    return postJSON(form.dataset.optionsUrl, form, {}).then(function (json) {
      if (json.error) {
        return json;
      }
      return navigator.credentials.get({ publicKey: requestOptions(json) }).then(function (credential) {
        return postJSON(form.action, form, { credential: credentialJSON(credential), next: nextField(form) });
      });
    });
  }

  function start(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (form.getAttribute("aria-busy") === "true") {
        return;
      }
      form.setAttribute("aria-busy", "true");
      var box = form.querySelector("[data-passkey-error]");
      if (box) {
        box.hidden = true;
      }
      var ceremony = form.dataset.passkey === "register" ? register(form) : authenticate(form);
      ceremony.then(
        function (data) {
          follow(form, data);
        },
        function (error) {
          follow(form, { error: browserError(error) });
        }
      );
    });
  }

  function init() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      return; // the boxes stay hidden; a page may say why in [data-passkey-unsupported]
    }
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) {
      note.hidden = true;
    });
    document.querySelectorAll("[data-passkey-box]").forEach(function (box) {
      box.hidden = false;
    });
    document.querySelectorAll("form[data-passkey]").forEach(start);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

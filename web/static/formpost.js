// Submits the form_post response page's form to the service at once
// (OAuth 2.0 Form Post Response Mode); without script, the page shows a
// button instead.
document.addEventListener("DOMContentLoaded", function () {
  var f = document.getElementById("form-post");
  if (f) {
    f.submit();
  }
});

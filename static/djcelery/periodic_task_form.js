// django-celery-beat's crontab helper on the periodic task form, as its own inline script did it
// (templates/admin/djcelery/change_periodictask_form.html): under the crontab choice, say in
// words when the chosen schedule runs.
(function ($) {
  "use strict";
  var readable = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var help = JSON.parse(document.getElementById("crontab-help-text").textContent);

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    var translation = document.createTextNode("Translation: " + readable[$("#id_crontab").val()]);
    $(".field-crontab .help").text(help).append("<br>", translation);
  });
})(django.jQuery);

/*
 * The verification page: what a resident, a journalist or an auditor sees and does.
 *
 * The reader chooses (or drops) a document. The browser hashes it (WebCrypto SHA-256), asks
 * the node which acts anchored that digest, fetches each act's receipt, and verifies the
 * receipt itself with SceauVerify (verify.js, in this same page) against the genesis embedded
 * in the page: nothing the node says is believed unless the receipt proves it. Offline, the
 * reader gives the act's receipt file beside the document and nothing is fetched at all.
 *
 * Everything shown is built with textContent (never markup from data), in French or English.
 * Plain ES2020, no module, no dependency, no build step: this file is served as it is written.
 */
(function () {
  "use strict";

  var DOCUMENT_BYTES_MAX = 512 * 1024 * 1024;
  var JSON_FILE_BYTES_MAX = 8 * 1024 * 1024;
  var ANSWER_BYTES_MAX = 8 * 1024 * 1024;
  var ACTS_SHOWN_MAX = 20;
  var REQUEST_TIMEOUT_MS = 20000;

  var TEXTS = {
    fr: {
      title: "Vérifier un acte administratif",
      skip: "Aller au contenu",
      heading: "Vérifier un acte administratif",
      lead: "Choisissez le document que vous avez reçu ou téléchargé (une délibération, un " +
        "arrêté, un permis…). Votre navigateur calcule son empreinte et vérifie lui-même la " +
        "preuve que le registre de la collectivité a enregistré cet acte, et son état actuel. " +
        "Le document ne quitte pas votre ordinateur.",
      insecure_title: "Cette page ne peut pas vérifier ici.",
      insecure_body: "La vérification utilise la cryptographie de votre navigateur, qui n'est " +
        "disponible que sur une adresse https://, sur localhost ou depuis un fichier ouvert " +
        "sur votre ordinateur. Ouvrez cette page en https, ou demandez à la collectivité le " +
        "fichier de vérification hors ligne (« sceau page »).",
      unsupported_title: "Ce navigateur ne peut pas vérifier les signatures.",
      unsupported_body: "Il ne sait pas vérifier les signatures Ed25519 que porte le " +
        "registre. Utilisez une version récente de Firefox, Chrome, Edge ou Safari.",
      choose_heading: "1. Le document",
      document_label: "Choisir le document à vérifier",
      document_hint: "n'importe quel fichier : PDF, image, tableur…",
      drop_hint: "Vous pouvez aussi déposer le document ici (et son fichier de reçu pour une " +
        "vérification hors ligne).",
      chosen_label: "Fichiers choisis",
      offline_summary: "Vérifier hors ligne, avec un fichier de reçu",
      offline_body: "Si vous avez le fichier de reçu de l'acte (« sceau receipt --out »), la " +
        "page le vérifie sans rien demander à aucun serveur.",
      receipt_label: "Fichier de reçu (.json)",
      genesis_label: "Fichier de genèse du consortium (genesis.json)",
      verify_button: "Vérifier",
      clear_button: "Recommencer",
      result_heading: "2. Le résultat",
      result_empty: "Le résultat s'affichera ici.",
      about_heading: "Ce que vérifie cette page",
      about_body: "Chaque acte est enregistré par son empreinte (SHA-256) dans un registre " +
        "tenu ensemble par les collectivités du consortium : chaque bloc est signé par une " +
        "majorité qualifiée d'entre elles. Votre navigateur vérifie ces signatures, la chaîne " +
        "des membres depuis la genèse du consortium, le droit du signataire à publier pour la " +
        "collectivité, l'état de l'acte et le point de contrôle du journal. Un document " +
        "modifié, même d'un seul octet, a une autre empreinte : il n'est pas trouvé.",
      footer: "Tout le code de cette page est dans la page elle-même, lisible ; elle ne " +
        "charge rien d'autre.",
      consortium: "Registre du consortium « {name} » — identifiant {chain}",
      consortium_name: "Registre du consortium « {name} »",
      consortium_unknown: "Aucune genèse dans cette page : choisissez le fichier de genèse " +
        "du consortium dans « Vérifier hors ligne ».",
      chosen_document: "Document : {name} ({size})",
      chosen_receipt: "Reçu : {name}",
      chosen_genesis: "Genèse : {name}",
      working: "Vérification en cours…",
      working_hash: "Calcul de l'empreinte du document…",
      working_ask: "Recherche de l'empreinte dans le registre…",
      working_verify: "Vérification de la preuve dans votre navigateur…",
      need_document: "Choisissez d'abord un document.",
      need_receipt: "Cette page fonctionne hors ligne : donnez aussi le fichier de reçu de " +
        "l'acte (« Vérifier hors ligne »).",
      need_genesis: "Donnez le fichier de genèse du consortium (« Vérifier hors ligne ») : " +
        "c'est lui qui dit quelles collectivités signent le registre.",
      found_count: "{count} acte(s) enregistré(s) avec ce document.",
      found_more: "Seuls les {count} premiers sont vérifiés ici.",
      verified_title: "Document authentique, enregistré au registre",
      verified_act_title: "Acte vérifié dans le registre",
      verified_act_note: "Aucun document n'a été donné : la page vérifie l'enregistrement de " +
        "l'acte et son état, pas un fichier.",
      refused_title: "Preuve refusée : ne vous fiez pas à ce résultat",
      refused_step: "La vérification « {step} » a échoué.",
      refused_online: "Le serveur a envoyé une preuve qui ne tient pas. Ce n'est pas une " +
        "question de document : essayez un autre nœud du consortium, ou la vérification hors " +
        "ligne avec le fichier de reçu de l'acte.",
      refused_offline: "Ce fichier de reçu n'est pas une preuve valide pour ce consortium : il " +
        "a été modifié, ou il vient d'un autre registre.",
      refused_other_act: "Le serveur a envoyé la preuve d'un autre acte que celui demandé.",
      absent_title: "Ce document n'est pas dans le registre",
      absent_body: "Aucun acte enregistré n'a cette empreinte. Un document modifié, même d'un " +
        "seul octet (une page ajoutée, un fichier réenregistré), a une autre empreinte. " +
        "Vérifiez que vous avez le fichier original, tel que la collectivité l'a publié.",
      mismatch_title: "Ce document n'est pas celui de ce reçu",
      mismatch_body: "Le reçu est valide, mais il enregistre un autre document : son " +
        "empreinte n'est pas celle du fichier choisi. Un document modifié, même d'un seul " +
        "octet, a une autre empreinte.",
      digest_label: "Empreinte SHA-256 du document",
      failed_title: "La vérification n'a pas pu se faire",
      failed_node: "Le registre n'a pas pu être interrogé ({detail}). Réessayez plus tard, ou " +
        "vérifiez hors ligne avec le fichier de reçu de l'acte.",
      failed_browser: "Votre navigateur n'a pas pu faire les calculs ({detail}). Il faut un " +
        "navigateur récent (signatures Ed25519).",
      failed_file: "Le fichier « {name} » n'a pas pu être lu ({detail}).",
      failed_too_large: "Le fichier « {name} » est trop grand ({size} ; au plus {max}).",
      failed_not_json: "Le fichier « {name} » n'est pas un fichier JSON valide ({detail}).",
      fact_collectivity: "Collectivité",
      fact_reference: "Référence",
      fact_kind: "Nature",
      fact_date: "Date de l'acte",
      fact_title: "Objet",
      fact_url: "Publication",
      fact_anchored: "Enregistré",
      fact_status: "État",
      fact_versions: "Autres versions",
      fact_signer: "Signé par",
      fact_log: "Journal des actes",
      fact_transaction: "Transaction",
      anchored_at: "le {date} (bloc {height})",
      status_now: "{status} (depuis le bloc {height}, prouvé au bloc {proven})",
      status_at_anchor: "{status} à son enregistrement — ce reçu ne prouve pas l'état actuel",
      versions_amended_by: "modifié par",
      versions_amends: "modifie",
      versions_superseded_by: "remplacé par",
      versions_supersedes: "remplace",
      versions_offline: "(vérifiable en ligne)",
      signer_member_node_key: "la clé de la collectivité membre du consortium",
      signer_issuer_key: "la clé de la collectivité, admise par le consortium",
      signer_delegated: "un délégué de la collectivité",
      signer_not_proven: "un signataire dont ce reçu ne prouve pas le droit",
      log_entry: "entrée n° {index} ; point de contrôle de {size} entrées signé par {signers}",
      log_witnesses: " ; cosigné par {witnesses}",
      log_none: "ce reçu ne porte pas de point de contrôle",
      checks_title: "Vérifié dans votre propre navigateur",
      checks_intro: "Ces contrôles ont été faits ici, sur votre ordinateur, à partir de la " +
        "genèse du consortium :",
      members_count: "{signers} signatures sur {members} membres (il en faut {quorum})",
      kind: {
        deliberation: "Délibération", decree: "Arrêté", decision: "Décision",
        permit: "Permis ou autorisation", contract: "Contrat", budget: "Budget",
        dataset: "Jeu de données", other: "Autre acte"
      },
      status: {
        in_force: "En vigueur", amended: "En vigueur, modifié", superseded: "Remplacé",
        withdrawn: "Retiré", annulled: "Annulé"
      },
      step: {
        format: "format du fichier",
        chain: "identité du consortium (genèse)",
        transaction: "transaction signée",
        members: "chaîne des membres depuis la genèse",
        members_at: "membres du consortium au bloc {height}",
        block: "bloc et signatures du quorum des membres",
        inclusion: "présence de la transaction dans le bloc",
        signer: "droit du signataire à publier pour la collectivité",
        document: "empreinte du document",
        status: "état actuel de l'acte",
        log: "place de l'acte dans le journal",
        checkpoint: "point de contrôle du journal",
        witnesses: "cosignatures des témoins"
      },
      locale: "fr-FR"
    },
    en: {
      title: "Verify an administrative act",
      skip: "Skip to the content",
      heading: "Verify an administrative act",
      lead: "Choose the document you received or downloaded (a deliberation, a decree, a " +
        "permit…). Your browser computes its fingerprint and itself verifies the proof that " +
        "the authority's register recorded this act, and its current status. The document " +
        "never leaves your computer.",
      insecure_title: "This page cannot verify here.",
      insecure_body: "Verifying uses your browser's cryptography, which is only available on " +
        "an https:// address, on localhost, or from a file opened on your computer. Open this " +
        "page over https, or ask the authority for the offline verification file " +
        "(\"sceau page\").",
      unsupported_title: "This browser cannot verify the signatures.",
      unsupported_body: "It cannot verify the Ed25519 signatures the register carries. Use a " +
        "recent version of Firefox, Chrome, Edge or Safari.",
      choose_heading: "1. The document",
      document_label: "Choose the document to verify",
      document_hint: "any file: PDF, image, spreadsheet…",
      drop_hint: "You can also drop the document here (with its receipt file to verify " +
        "offline).",
      chosen_label: "Chosen files",
      offline_summary: "Verify offline, with a receipt file",
      offline_body: "If you have the act's receipt file (\"sceau receipt --out\"), the page " +
        "verifies it without asking any server.",
      receipt_label: "Receipt file (.json)",
      genesis_label: "The consortium's genesis file (genesis.json)",
      verify_button: "Verify",
      clear_button: "Start again",
      result_heading: "2. The result",
      result_empty: "The result will show here.",
      about_heading: "What this page checks",
      about_body: "Every act is recorded by its fingerprint (SHA-256) in a register kept " +
        "together by the consortium's authorities: each block is signed by a qualified " +
        "majority of them. Your browser checks those signatures, the chain of members from " +
        "the consortium's genesis, the signer's right to publish for the authority, the act's " +
        "status and the log checkpoint. A document changed by even one byte has another " +
        "fingerprint: it is not found.",
      footer: "All of this page's code is in the page itself, readable; it loads nothing else.",
      consortium: "Register of the consortium \"{name}\" — identifier {chain}",
      consortium_name: "Register of the consortium \"{name}\"",
      consortium_unknown: "This page holds no genesis: choose the consortium's genesis file " +
        "under \"Verify offline\".",
      chosen_document: "Document: {name} ({size})",
      chosen_receipt: "Receipt: {name}",
      chosen_genesis: "Genesis: {name}",
      working: "Verifying…",
      working_hash: "Computing the document's fingerprint…",
      working_ask: "Looking the fingerprint up in the register…",
      working_verify: "Verifying the proof in your browser…",
      need_document: "Choose a document first.",
      need_receipt: "This page works offline: also give the act's receipt file (\"Verify " +
        "offline\").",
      need_genesis: "Give the consortium's genesis file (\"Verify offline\"): it says which " +
        "authorities sign the register.",
      found_count: "{count} act(s) recorded with this document.",
      found_more: "Only the first {count} are verified here.",
      verified_title: "Authentic document, recorded in the register",
      verified_act_title: "Act verified in the register",
      verified_act_note: "No document was given: the page verifies the act's record and " +
        "status, not a file.",
      refused_title: "Proof refused: do not rely on this result",
      refused_step: "The check \"{step}\" failed.",
      refused_online: "The server sent a proof that does not hold. This is not about your " +
        "document: try another node of the consortium, or verify offline with the act's " +
        "receipt file.",
      refused_offline: "This receipt file is not a valid proof for this consortium: it was " +
        "altered, or it comes from another register.",
      refused_other_act: "The server sent the proof of another act than the one asked for.",
      absent_title: "This document is not in the register",
      absent_body: "No recorded act has this fingerprint. A document changed by even one byte " +
        "(a page added, a file saved again) has another fingerprint. Check that you have the " +
        "original file, as the authority published it.",
      mismatch_title: "This document is not the one of this receipt",
      mismatch_body: "The receipt is valid, but it records another document: its fingerprint " +
        "is not the chosen file's. A document changed by even one byte has another " +
        "fingerprint.",
      digest_label: "The document's SHA-256 fingerprint",
      failed_title: "The verification could not be done",
      failed_node: "The register could not be asked ({detail}). Try again later, or verify " +
        "offline with the act's receipt file.",
      failed_browser: "Your browser could not do the computations ({detail}). A recent " +
        "browser is needed (Ed25519 signatures).",
      failed_file: "The file \"{name}\" could not be read ({detail}).",
      failed_too_large: "The file \"{name}\" is too large ({size}; at most {max}).",
      failed_not_json: "The file \"{name}\" is not a valid JSON file ({detail}).",
      fact_collectivity: "Authority",
      fact_reference: "Reference",
      fact_kind: "Kind",
      fact_date: "Date of the act",
      fact_title: "Title",
      fact_url: "Publication",
      fact_anchored: "Recorded",
      fact_status: "Status",
      fact_versions: "Other versions",
      fact_signer: "Signed with",
      fact_log: "Log of acts",
      fact_transaction: "Transaction",
      anchored_at: "on {date} (block {height})",
      status_now: "{status} (since block {height}, proven at block {proven})",
      status_at_anchor: "{status} when recorded — this receipt does not prove the current " +
        "status",
      versions_amended_by: "amended by",
      versions_amends: "amends",
      versions_superseded_by: "superseded by",
      versions_supersedes: "supersedes",
      versions_offline: "(verifiable online)",
      signer_member_node_key: "the key of the consortium member authority",
      signer_issuer_key: "the authority's key, admitted by the consortium",
      signer_delegated: "a delegate of the authority",
      signer_not_proven: "a signer whose right this receipt does not prove",
      log_entry: "entry #{index}; checkpoint of {size} entries signed by {signers}",
      log_witnesses: "; cosigned by {witnesses}",
      log_none: "this receipt carries no checkpoint",
      checks_title: "Checked in your own browser",
      checks_intro: "These checks were made here, on your computer, from the consortium's " +
        "genesis:",
      members_count: "{signers} signatures of {members} members ({quorum} needed)",
      kind: {
        deliberation: "Deliberation", decree: "Decree", decision: "Decision",
        permit: "Permit or authorisation", contract: "Contract", budget: "Budget",
        dataset: "Dataset", other: "Other act"
      },
      status: {
        in_force: "In force", amended: "In force, amended", superseded: "Superseded",
        withdrawn: "Withdrawn", annulled: "Annulled"
      },
      step: {
        format: "file format",
        chain: "consortium identity (genesis)",
        transaction: "signed transaction",
        members: "chain of members from the genesis",
        members_at: "consortium members at block {height}",
        block: "block and the members' quorum signatures",
        inclusion: "transaction included in the block",
        signer: "the signer's right to publish for the authority",
        document: "document fingerprint",
        status: "current status of the act",
        log: "the act's place in the log",
        checkpoint: "log checkpoint",
        witnesses: "witness cosignatures"
      },
      locale: "en-GB"
    }
  };
  var LANGUAGES = ["fr", "en"];
  var ACTIVE_STATUSES = ["in_force", "amended"];
  // RFC 8032's first test key: a browser that cannot import it cannot verify any signature,
  // and would otherwise report every receipt as forged.
  var ED25519_PROBE_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

  var configuration = readConfiguration();
  var state = {
    language: initialLanguage(),
    genesis: configuration.genesis,
    genesisName: null,
    chainId: null,
    documentFile: null,
    receiptFile: null,
    secure: false,     // WebCrypto with Ed25519 is there (a secure context), verify.js too
    started: null,     // a promise, settled once the page knows whether it can verify
    shown: null,       // what the result area shows: re-drawn when the language changes
    run: 0             // the current verification; an older one that ends is ignored
  };

  function $(id) {
    return document.getElementById(id);
  }

  function readConfiguration() {
    var element = document.getElementById("sceau-configuration");
    var parsed = JSON.parse(element.textContent);
    return {
      api: typeof parsed.api === "string" ? parsed.api : null,
      genesis: parsed.genesis && typeof parsed.genesis === "object" ? parsed.genesis : null,
      language: LANGUAGES.indexOf(parsed.language) >= 0 ? parsed.language : null,
      witnesses: parsed.witnesses || null
    };
  }

  function initialLanguage() {
    if (configuration.language) {
      return configuration.language;
    }
    var preferred = (navigator.languages && navigator.languages.length)
      ? navigator.languages : [navigator.language || "fr"];
    for (var index = 0; index < preferred.length; index += 1) {
      var code = String(preferred[index]).slice(0, 2).toLowerCase();
      if (LANGUAGES.indexOf(code) >= 0) {
        return code;
      }
    }
    return "fr";
  }

  // --- words ------------------------------------------------------------------------------

  function text(key, values) {
    var template = TEXTS[state.language][key];
    if (typeof template !== "string") {
      template = TEXTS.en[key];
    }
    return String(template).replace(/\{([a-z_]+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name)
        ? String(values[name]) : whole;
    });
  }

  function stepName(step) {
    var names = TEXTS[state.language].step;
    var atHeight = /^members at height (\d+)$/.exec(step || "");
    if (atHeight) {
      return names.members_at.replace("{height}", atHeight[1]);
    }
    if (Object.prototype.hasOwnProperty.call(names, step)) {
      return names[step];
    }
    return String(step);
  }

  function kindName(kind) {
    var names = TEXTS[state.language].kind;
    return Object.prototype.hasOwnProperty.call(names, kind) ? names[kind] : String(kind);
  }

  function statusName(status) {
    var names = TEXTS[state.language].status;
    return Object.prototype.hasOwnProperty.call(names, status) ? names[status] : String(status);
  }

  function sizeText(bytes) {
    var units = state.language === "fr" ? ["octets", "Ko", "Mo", "Go"] : ["bytes", "KB", "MB",
      "GB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    var shown = unit === 0 ? String(value) : value.toLocaleString(text("locale"), {
      maximumFractionDigits: 1
    });
    return shown + " " + units[unit];
  }

  function dateTimeText(milliseconds) {
    return new Date(milliseconds).toLocaleString(text("locale"), {
      dateStyle: "long", timeStyle: "long"
    });
  }

  function actDateText(isoDate) {
    var match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(isoDate));
    if (!match) {
      return String(isoDate);
    }
    var date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
    return date.toLocaleDateString(text("locale"), { dateStyle: "long", timeZone: "UTC" });
  }

  function translatePage() {
    document.documentElement.lang = state.language;
    document.title = text("title");
    var elements = document.querySelectorAll("[data-text]");
    for (var index = 0; index < elements.length; index += 1) {
      elements[index].textContent = text(elements[index].getAttribute("data-text"));
    }
    var buttons = document.querySelectorAll("button[data-language]");
    for (var position = 0; position < buttons.length; position += 1) {
      var pressed = buttons[position].getAttribute("data-language") === state.language;
      buttons[position].setAttribute("aria-pressed", pressed ? "true" : "false");
    }
    $("chosen").setAttribute("aria-label", text("chosen_label"));
    showConsortium();
    showChosen();
    if (state.shown) {
      draw(state.shown);
    }
  }

  // --- building elements ------------------------------------------------------------------

  function element(tag, options, children) {
    var made = document.createElement(tag);
    options = options || {};
    if (options.className) {
      made.className = options.className;
    }
    if (options.text !== undefined) {
      made.textContent = options.text;
    }
    if (options.attributes) {
      Object.keys(options.attributes).forEach(function (name) {
        made.setAttribute(name, options.attributes[name]);
      });
    }
    (children || []).forEach(function (child) {
      if (child) {
        made.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return made;
  }

  function facts(rows) {
    var list = element("dl", { className: "facts" });
    rows.forEach(function (row) {
      if (!row) {
        return;
      }
      list.appendChild(element("dt", { text: row[0] }));
      var value = row[1];
      list.appendChild(typeof value === "string" || typeof value === "number"
        ? element("dd", { text: String(value), className: row[2] || "" })
        : element("dd", { className: row[2] || "" }, [value]));
    });
    return list;
  }

  // --- the header line and the chosen files ------------------------------------------------

  function showConsortium() {
    var line = $("consortium");
    if (!state.genesis) {
      line.textContent = text("consortium_unknown");
      return;
    }
    line.textContent = text(state.chainId ? "consortium" : "consortium_name", {
      name: String(state.genesis.consortium),
      chain: state.chainId ? state.chainId.slice(0, 16) + "…" : ""
    });
  }

  function showChosen() {
    var list = $("chosen");
    list.textContent = "";
    if (state.documentFile) {
      list.appendChild(element("li", { text: text("chosen_document", {
        name: state.documentFile.name, size: sizeText(state.documentFile.size)
      }) }));
    }
    if (state.receiptFile) {
      list.appendChild(element("li", { text: text("chosen_receipt", {
        name: state.receiptFile.name
      }) }));
    }
    if (state.genesisName) {
      list.appendChild(element("li", { text: text("chosen_genesis", {
        name: state.genesisName
      }) }));
    }
  }

  // --- the result area: every outcome is a plain description, drawn again on a language change

  function show(description) {
    state.shown = description;
    draw(description);
  }

  function draw(description) {
    var area = $("result");
    area.textContent = "";
    area.setAttribute("aria-busy", description.kind === "working" ? "true" : "false");
    if (description.kind === "working") {
      area.appendChild(outcome("working", text(description.key), []));
      return;
    }
    if (description.kind === "message") {
      area.appendChild(element("p", { text: text(description.key, description.values) }));
      return;
    }
    if (description.kind === "failed") {
      area.appendChild(outcome("refused", text("failed_title"), [
        element("p", { text: text(description.key, description.values) })
      ], { "data-outcome": "failed" }));
      return;
    }
    if (description.kind === "absent") {
      area.appendChild(outcome("absent", text("absent_title"), [
        element("p", { text: text("absent_body") }),
        facts([[text("digest_label"), description.digest, "technical"]])
      ], { "data-outcome": "absent" }));
      return;
    }
    if (description.kind === "acts") {
      if (description.found > 1 || description.found > description.items.length) {
        area.appendChild(element("p", { text: text("found_count", {
          count: description.found
        }) }));
      }
      if (description.found > description.items.length) {
        area.appendChild(element("p", { text: text("found_more", {
          count: description.items.length
        }) }));
      }
      description.items.forEach(function (item) {
        area.appendChild(drawItem(item, description));
      });
    }
  }

  function outcome(kind, title, children, attributes) {
    return element("article", { className: "outcome outcome-" + kind, attributes: attributes },
      [element("h3", { text: title })].concat(children));
  }

  function drawItem(item, description) {
    if (item.kind === "refused") {
      var lines = [element("p", { text: text("refused_step", { step: stepName(item.step) }) })];
      if (item.message) {
        lines.push(element("p", { className: "technical", text: item.message,
          attributes: { lang: "en" } }));
      }
      lines.push(element("p", { text: text(description.offline ? "refused_offline"
        : "refused_online") }));
      return outcome("refused", text("refused_title"), lines,
        { "data-outcome": "refused", "data-step": String(item.step) });
    }
    if (item.kind === "mismatch") {
      return outcome("absent", text("mismatch_title"), [
        element("p", { text: text("mismatch_body") }),
        facts([[text("digest_label"), description.digest, "technical"]])
      ], { "data-outcome": "mismatch" });
    }
    if (item.kind === "other_act") {
      return outcome("refused", text("refused_title"), [
        element("p", { text: text("refused_other_act") }),
        element("p", { text: text("refused_online") })
      ], { "data-outcome": "refused", "data-step": "act" });
    }
    return drawVerified(item.result, description);
  }

  function drawVerified(result, description) {
    var act = result.act || {};
    var record = result.status;
    var children = [];
    if (!description.digest) {
      children.push(element("p", { text: text("verified_act_note") }));
    }
    var collectivity = result.principalName
      ? result.principalName + " (" + (result.principal || act.issuer) + ")"
      : String(result.principal || act.issuer || "");
    var statusText;
    var statusCode = record ? record.status : "in_force";
    if (record) {
      statusText = text("status_now", {
        status: statusName(record.status),
        height: record.status_height !== undefined ? record.status_height : result.statusHeight,
        proven: result.statusHeight !== null && result.statusHeight !== undefined
          ? result.statusHeight : result.height
      });
    } else {
      statusText = text("status_at_anchor", { status: statusName("in_force") });
    }
    var rows = [
      [text("fact_collectivity"), collectivity],
      [text("fact_reference"), String(act.reference || "")],
      [text("fact_kind"), kindName(act.kind)],
      [text("fact_date"), actDateText(act.act_date)],
      [text("fact_title"), String(act.title || "")],
      act.url ? [text("fact_url"), String(act.url), "technical"] : null,
      [text("fact_anchored"), text("anchored_at", {
        date: dateTimeText(result.timestampMs), height: result.height
      })],
      [text("fact_status"), statusText,
        ACTIVE_STATUSES.indexOf(statusCode) >= 0 ? "status-active" : "status-ended"]
    ];
    var versions = record ? versionLinks(String(act.issuer), record) : null;
    if (versions) {
      rows.push([text("fact_versions"), versions]);
    }
    rows.push([text("fact_signer"), signerText(result)]);
    rows.push([text("fact_log"), logText(result)]);
    if (description.digest) {
      rows.push([text("digest_label"), description.digest, "technical"]);
    }
    rows.push([text("fact_transaction"), String(result.txId), "technical"]);
    children.push(facts(rows));
    children.push(checksSection(result));
    return outcome("verified", text(description.digest ? "verified_title"
      : "verified_act_title"), children, {
      "data-outcome": "verified",
      "data-reference": String(act.reference || ""),
      "data-status": String(statusCode)
    });
  }

  function versionLinks(issuer, record) {
    var groups = [
      ["versions_amended_by", record.amended_by],
      ["versions_amends", record.amends],
      ["versions_superseded_by", record.superseded_by ? [record.superseded_by] : []],
      ["versions_supersedes", record.supersedes]
    ];
    var list = element("ul", { className: "versions" });
    groups.forEach(function (group) {
      var references = Array.isArray(group[1]) ? group[1] : [];
      references.forEach(function (reference) {
        var item = element("li", {}, [text(group[0]) + " "]);
        if (configuration.api !== null) {
          item.appendChild(element("a", {
            text: String(reference),
            attributes: { href: "#act=" + encodeURIComponent(issuer) + "/" +
              encodeURIComponent(String(reference)) }
          }));
        } else {
          item.appendChild(document.createTextNode(String(reference) + " " +
            text("versions_offline")));
        }
        list.appendChild(item);
      });
    });
    return list.childNodes.length ? list : null;
  }

  function signerText(result) {
    var right = result.signerRight;
    var kind = right && right.kind ? right.kind : "member_node_key";
    var key = "signer_" + kind;
    var words = Object.prototype.hasOwnProperty.call(TEXTS[state.language], key)
      ? text(key) : String(kind);
    return words + " — " + text("members_count", {
      signers: (result.signers || []).length, members: result.members, quorum: result.quorum
    });
  }

  function logText(result) {
    var checkpoint = result.checkpoint;
    if (!checkpoint || result.logIndex === null || result.logIndex === undefined) {
      return text("log_none");
    }
    var line = text("log_entry", {
      index: result.logIndex, size: checkpoint.size,
      signers: (checkpoint.signers || []).join(", ")
    });
    if (checkpoint.witnesses && checkpoint.witnesses.length) {
      line += text("log_witnesses", { witnesses: checkpoint.witnesses.join(", ") });
    }
    return line;
  }

  function checksSection(result) {
    var list = element("ol", { className: "checks" });
    (result.checks || []).forEach(function (check) {
      list.appendChild(element("li", { attributes: { "data-step": String(check.step) } }, [
        element("strong", { text: stepName(check.step) }),
        element("span", { className: "detail", text: String(check.detail),
          attributes: { lang: "en" } })
      ]));
    });
    return element("section", { className: "checked" }, [
      element("h4", { text: text("checks_title") }),
      element("p", { text: text("checks_intro") }),
      list
    ]);
  }

  // --- reading files ----------------------------------------------------------------------

  function Failure(key, values) {
    this.key = key;
    this.values = values || {};
  }

  function readBytes(file, limit) {
    if (file.size > limit) {
      return Promise.reject(new Failure("failed_too_large", {
        name: file.name, size: sizeText(file.size), max: sizeText(limit)
      }));
    }
    return file.arrayBuffer().then(function (buffer) {
      return new Uint8Array(buffer);
    }, function (error) {
      throw new Failure("failed_file", { name: file.name, detail: error.message || error });
    });
  }

  function readJsonFile(file) {
    return readBytes(file, JSON_FILE_BYTES_MAX).then(function (bytes) {
      var decoded;
      try {
        decoded = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        return SceauVerify.parseJson(decoded);
      } catch (error) {
        throw new Failure("failed_not_json", { name: file.name, detail: error.message });
      }
    });
  }

  function receiptOf(document) {
    // A receipt file is the receipt itself; a saved GET /v1/transactions answer holds it.
    if (document && typeof document === "object" && !("format" in document) &&
        document.receipt && typeof document.receipt === "object") {
      return document.receipt;
    }
    return document;
  }

  // --- asking the node --------------------------------------------------------------------

  function NodeAnswer(status, body) {
    this.status = status;
    this.body = body;
  }

  function ask(path) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS);
    return fetch(configuration.api + path, {
      headers: { Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      signal: controller.signal
    }).then(function (response) {
      var length = Number(response.headers.get("Content-Length") || "0");
      if (length > ANSWER_BYTES_MAX) {
        throw new Failure("failed_node", { detail: "answer over " + ANSWER_BYTES_MAX + " bytes" });
      }
      return response.text().then(function (body) {
        if (body.length > ANSWER_BYTES_MAX) {
          throw new Failure("failed_node", { detail: "answer over " + ANSWER_BYTES_MAX +
            " bytes" });
        }
        var parsed = null;
        try {
          parsed = SceauVerify.parseJson(body);
        } catch (error) {
          throw new Failure("failed_node", { detail: "HTTP " + response.status +
            ", not JSON" });
        }
        return new NodeAnswer(response.status, parsed);
      });
    }, function (error) {
      throw new Failure("failed_node", { detail: error.name === "AbortError"
        ? "no answer within " + (REQUEST_TIMEOUT_MS / 1000) + " s" : String(error.message) });
    }).finally(function () {
      clearTimeout(timer);
    });
  }

  function problemText(answer) {
    var body = answer.body || {};
    return "HTTP " + answer.status + (body.code ? " " + body.code : "") +
      (body.detail ? ": " + String(body.detail).slice(0, 200) : "");
  }

  function actPath(prefix, issuer, reference) {
    return prefix + encodeURIComponent(issuer) + "/" + encodeURIComponent(reference);
  }

  function fetchReceipt(issuer, reference) {
    return ask(actPath("/v1/history/", issuer, reference)).then(function (answer) {
      if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.history)) {
        throw new Failure("failed_node", { detail: problemText(answer) });
      }
      var anchoring = answer.body.history.filter(function (entry) {
        return entry && entry.action === "anchor" && /^[0-9a-f]{64}$/.test(entry.tx_id);
      })[0];
      if (!anchoring) {
        throw new Failure("failed_node", { detail: "no anchoring transaction in the history" });
      }
      return ask("/v1/transactions/" + anchoring.tx_id + "?with_status=true");
    }).then(function (answer) {
      if (answer.status !== 200 || !answer.body || !answer.body.receipt) {
        throw new Failure("failed_node", { detail: problemText(answer) });
      }
      return answer.body.receipt;
    });
  }

  // --- verifying --------------------------------------------------------------------------

  function verifyOptions(documentBytes) {
    var options = {};
    if (documentBytes) {
      options.document = documentBytes;
    }
    if (configuration.witnesses) {
      options.witnesses = configuration.witnesses;
    }
    return options;
  }

  /* One receipt, verified: a verified item, or a refused one naming the check that failed.
     ``expected`` (issuer, reference) is the act asked for, when the node chose the receipt. */
  function verifyItem(receipt, documentBytes, expected, offline) {
    return SceauVerify.verifyReceipt(receipt, state.genesis, verifyOptions(documentBytes))
      .then(function (result) {
        if (expected && (!result.act || result.act.issuer !== expected.issuer ||
            result.act.reference !== expected.reference)) {
          return { kind: "other_act" };
        }
        if (documentBytes && result.documentMatches !== true) {
          return { kind: offline ? "mismatch" : "refused", step: "document", message: "" };
        }
        return { kind: "verified", result: result };
      }, function (error) {
        if (error && error.name === "ReceiptError") {
          if (offline && error.step === "document") {
            return { kind: "mismatch" };
          }
          return { kind: "refused", step: error.step, message: error.message };
        }
        throw new Failure("failed_browser", { detail: error && error.message
          ? error.message : String(error) });
      });
  }

  function begin() {
    state.run += 1;
    return state.run;
  }

  function finish(run, description) {
    if (run === state.run) {
      show(description);
    }
  }

  function failed(run) {
    return function (error) {
      if (error instanceof Failure) {
        finish(run, { kind: "failed", key: error.key, values: error.values });
      } else {
        finish(run, { kind: "failed", key: "failed_browser", values: {
          detail: error && error.message ? error.message : String(error)
        } });
      }
    };
  }

  function verifyChosen() {
    return state.started.then(verifyChosenNow);
  }

  function verifyChosenNow() {
    var run = begin();
    if (!state.secure) {
      finish(run, { kind: "message", key: window.isSecureContext ? "unsupported_body"
        : "insecure_body" });
      return Promise.resolve();
    }
    if (!state.documentFile) {
      finish(run, { kind: "message", key: "need_document" });
      return Promise.resolve();
    }
    var offline = state.receiptFile !== null || configuration.api === null;
    if (offline && !state.receiptFile) {
      finish(run, { kind: "message", key: "need_receipt" });
      return Promise.resolve();
    }
    if (!state.genesis) {
      finish(run, { kind: "message", key: "need_genesis" });
      return Promise.resolve();
    }
    show({ kind: "working", key: "working_hash" });
    var documentBytes;
    var digest;
    return readBytes(state.documentFile, DOCUMENT_BYTES_MAX).then(function (bytes) {
      documentBytes = bytes;
      return SceauVerify.sha256Hex(bytes);
    }).then(function (hex) {
      digest = hex;
      if (offline) {
        finish(run, { kind: "working", key: "working_verify" });
        return readJsonFile(state.receiptFile).then(function (file) {
          return verifyItem(receiptOf(file), documentBytes, null, true);
        }).then(function (item) {
          finish(run, { kind: "acts", digest: digest, offline: true, found: 1, items: [item] });
        });
      }
      finish(run, { kind: "working", key: "working_ask" });
      return ask("/v1/digests/" + digest).then(function (answer) {
        if (answer.status === 404 && answer.body && answer.body.code === "unknown_act") {
          finish(run, { kind: "absent", digest: digest });
          return null;
        }
        if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.acts)) {
          throw new Failure("failed_node", { detail: problemText(answer) });
        }
        var acts = answer.body.acts;
        if (acts.length === 0) {
          finish(run, { kind: "absent", digest: digest });
          return null;
        }
        finish(run, { kind: "working", key: "working_verify" });
        var shown = acts.slice(0, ACTS_SHOWN_MAX);
        return Promise.all(shown.map(function (act) {
          var expected = { issuer: String(act.issuer), reference: String(act.reference) };
          return fetchReceipt(expected.issuer, expected.reference).then(function (receipt) {
            return verifyItem(receipt, documentBytes, expected, false);
          });
        })).then(function (items) {
          finish(run, { kind: "acts", digest: digest, offline: false, found: acts.length,
            items: items });
        });
      });
    }).catch(failed(run));
  }

  /* ``#act=<issuer>/<reference>``: that act's receipt from the node, verified (no document). */
  function verifyLinkedAct() {
    var match = /^#act=([^/]+)\/(.+)$/.exec(window.location.hash);
    if (!match || configuration.api === null || !state.genesis || !state.secure) {
      return Promise.resolve();
    }
    var expected;
    try {
      expected = { issuer: decodeURIComponent(match[1]), reference: decodeURIComponent(match[2]) };
    } catch (error) {
      return Promise.resolve();
    }
    var run = begin();
    show({ kind: "working", key: "working_verify" });
    return fetchReceipt(expected.issuer, expected.reference).then(function (receipt) {
      return verifyItem(receipt, null, expected, false);
    }).then(function (item) {
      finish(run, { kind: "acts", digest: null, offline: false, found: 1, items: [item] });
    }).catch(failed(run));
  }

  // --- choosing files ---------------------------------------------------------------------

  function looksLikeJson(file) {
    return /\.json$/i.test(file.name) || file.type === "application/json";
  }

  /* Dropped files: a receipt (a JSON object with a "format" naming a sceau receipt, or
     holding one), a genesis (with "consortium" and "members") when the page has none, and
     the document (anything else). */
  function classifyDropped(files) {
    var documents = [];
    return Promise.all(Array.prototype.map.call(files, function (file) {
      if (!looksLikeJson(file) || file.size > JSON_FILE_BYTES_MAX) {
        documents.push(file);
        return null;
      }
      return readJsonFile(file).then(function (parsed) {
        var receipt = receiptOf(parsed);
        if (receipt && typeof receipt.format === "string" &&
            receipt.format.indexOf("sceau-receipt") === 0) {
          state.receiptFile = file;
          $("offline").open = true;
        } else if (!configuration.genesis && parsed && parsed.consortium && parsed.members) {
          state.genesis = parsed;
          state.genesisName = file.name;
          return computeChainId();
        } else {
          documents.push(file);
        }
        return null;
      }, function () {
        documents.push(file);
      });
    })).then(function () {
      if (documents.length) {
        state.documentFile = documents[0];
      }
      showChosen();
    });
  }

  function computeChainId() {
    state.chainId = null;
    showConsortium();
    if (!state.genesis || !window.isSecureContext) {
      return Promise.resolve();
    }
    return SceauVerify.chainId(state.genesis).then(function (chainId) {
      state.chainId = chainId;
      showConsortium();
    }, function () {
      state.chainId = null;
      showConsortium();
    });
  }

  function ready() {
    return state.documentFile && (configuration.api !== null || state.receiptFile);
  }

  function wire() {
    var documentInput = $("document-input");
    documentInput.addEventListener("change", function () {
      state.documentFile = documentInput.files.length ? documentInput.files[0] : null;
      showChosen();
      if (ready()) {
        verifyChosen();
      }
    });
    var receiptInput = $("receipt-input");
    receiptInput.addEventListener("change", function () {
      state.receiptFile = receiptInput.files.length ? receiptInput.files[0] : null;
      showChosen();
      if (ready()) {
        verifyChosen();
      }
    });
    var genesisInput = $("genesis-input");
    genesisInput.addEventListener("change", function () {
      if (!genesisInput.files.length) {
        return;
      }
      var file = genesisInput.files[0];
      readJsonFile(file).then(function (parsed) {
        state.genesis = parsed;
        state.genesisName = file.name;
        showChosen();
        return computeChainId();
      }).catch(failed(begin()));
    });
    $("verify-button").addEventListener("click", function () {
      verifyChosen();
    });
    $("clear-button").addEventListener("click", function () {
      begin();
      state.documentFile = null;
      state.receiptFile = null;
      state.shown = null;
      documentInput.value = "";
      receiptInput.value = "";
      showChosen();
      $("result").textContent = "";
      $("result").appendChild(element("p", { className: "hint", text: text("result_empty") }));
      if (window.location.hash) {
        history.replaceState(null, "", window.location.pathname + window.location.search);
      }
      documentInput.focus();
    });
    var zone = $("drop-zone");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("dragging");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        classifyDropped(event.dataTransfer.files).then(function () {
          if (ready()) {
            verifyChosen();
          }
        });
      }
    });
    var buttons = document.querySelectorAll("button[data-language]");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        state.language = button.getAttribute("data-language");
        translatePage();
      });
    });
    window.addEventListener("hashchange", verifyLinkedAct);
  }

  function start() {
    if (!configuration.genesis) {
      $("genesis-field").hidden = false;
    }
    if (configuration.api === null) {
      $("offline").open = true;
    }
    wire();
    translatePage();
    var secure = window.isSecureContext && window.crypto && window.crypto.subtle &&
      typeof SceauVerify === "object";
    if (!secure) {
      $("insecure").hidden = false;
      $("verify-button").disabled = true;
      return Promise.resolve();
    }
    return supportsEd25519().then(function (supported) {
      if (!supported) {
        $("unsupported").hidden = false;
        $("verify-button").disabled = true;
        return;
      }
      state.secure = true;
      computeChainId();
      verifyLinkedAct();
    });
  }

  function supportsEd25519() {
    var key = new Uint8Array(32);
    for (var index = 0; index < 32; index += 1) {
      key[index] = parseInt(ED25519_PROBE_KEY.substr(index * 2, 2), 16);
    }
    return window.crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"])
      .then(function () { return true; }, function () { return false; });
  }

  state.started = start();
})();

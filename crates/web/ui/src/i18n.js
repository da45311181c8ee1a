// German and English texts. The language is the browser's by default, switchable, and remembered.

const en = {
  // logs and diagnosis (issue 16)
  logsPage: 'Logs', diagnosisOf: 'Diagnosis of {name}', nothingWrong: 'Nothing is wrong here.', evidence: 'Evidence',
  fix: 'Fix', fixByChat: 'The fix is the operation {op}: ask the chat, which shows it as a plan and asks first.',
  unit: 'Unit', priority: 'Priority', containsText: 'Contains', follow: 'Follow live', prioErr: 'errors',
  prioWarning: 'warnings and worse', prioInfo: 'info and worse', prioDebug: 'everything', services: 'Services',
  diagnose: 'Diagnose', showLogs: 'Show logs', description: 'Description', noServices: 'No services.',
  journal: 'Journal', noEntries: 'No journal entries match.', serviceList: 'Service list', journalEntries: 'Journal entries',
  noSystemd: 'systemd is not running on this machine, so there are no services to list.',
  skip: 'Skip to content', navLabel: 'Main', language: 'Language', theme: 'Theme',
  themeSystem: 'System', themeLight: 'Light', themeDark: 'Dark', logout: 'Log out',
  chat: 'Chat', drives: 'Drives', sandboxes: 'Sandboxes', system: 'System', audit: 'Audit', login: 'Log in',
  loading: 'Loading…', error: 'Error', retry: 'Retry', cancel: 'Cancel', confirm: 'Confirm', close: 'Close',
  refresh: 'Refresh', none: 'None', yes: 'yes', no: 'no', name: 'Name', state: 'State', actions: 'Actions',
  notAvailable: 'Not available yet', notAvailableText: 'This cacheosd does not offer {what} over REST yet ({path}).',
  // chat
  chatIntro: 'Ask in German or English, for example “zeig mir den Systemstatus” or “show the audit log of the last hour”.',
  message: 'Message', send: 'Send', stopModel: 'Stop', you: 'You', cacheos: 'CacheOS', newSession: 'New conversation',
  willDo: 'What I will do', operation: 'Operation', args: 'Arguments', risk: 'Risk',
  confirmPlan: 'Run this plan', cancelPlan: 'Cancel', planConfirmed: 'Confirmed', planCancelled: 'Cancelled',
  result: 'Result', conversation: 'Conversation', thinking: 'Working…', historyEmpty: 'No messages in this conversation yet.',
  yesWord: 'yes', noWord: 'no', session: 'Session',
  // drives
  drivesList: 'Attached drives', noDrives: 'No drives attached.', image: 'Image', format: 'Format', size: 'Size',
  mode: 'Mode', readWrite: 'read-write', readOnly: 'read-only', persistent: 'Persistent', partitions: 'Partitions',
  mountPoint: 'Mount point', used: 'Used', free: 'Free', snapshot: 'Snapshot', usedBy: 'Used by',
  attach: 'Attach', attachTitle: 'Attach an image', imagePath: 'Image path', fromImages: 'From the images directory',
  choose: '– choose –', writable: 'Writable', mountIt: 'Mount file systems', partscan: 'Scan partitions',
  detach: 'Detach', detachConfirm: 'Detach drive “{name}”? Its file systems are unmounted.',
  takeSnapshot: 'Snapshot', discard: 'Discard changes', discardConfirm: 'Discard every change made to “{name}” since its snapshot?',
  commit: 'Commit changes', commitConfirm: 'Write every change since the snapshot into the image of “{name}”?',
  persist: 'Keep after restart', unpersist: 'Do not keep', browse: 'Browse', files: 'Files of {name}',
  createTitle: 'Create an image', create: 'Create', fs: 'File system', label: 'Label', attachAfter: 'Attach after creating',
  sizeHint: 'e.g. 512M, 2G', kind: 'Kind', emptyDir: 'Empty directory.', up: 'Up', imagesDir: 'Images directory',
  noImages: 'The images directory is empty.', modified: 'Modified', done: 'Done.',
  uploadTitle: 'Upload an image', uploadFile: 'Image file on this computer', uploadName: 'Name in the images directory',
  uploadNameHint: 'Defaults to the file name', upload: 'Upload', uploadProgress: 'Upload progress',
  uploaded: 'Uploaded {name} ({size}).',
  // sandboxes
  sandboxesList: 'Sandboxes', noSandboxes: 'No sandboxes.', resources: 'Resources', drive: 'Drive', template: 'Template', cpus: 'CPUs', memory: 'Memory',
  tasks: 'Tasks', network: 'Network', netNone: 'none', netNat: 'NAT', binds: 'Drives to bind', addBind: 'Add drive',
  removeBind: 'Remove', env: 'Environment', envHint: 'One KEY=value per line', ephemeral: 'Ephemeral (removed when stopped)',
  createSandbox: 'Create a sandbox', start: 'Start', stop: 'Stop', restart: 'Restart', remove: 'Remove',
  removeConfirm: 'Remove sandbox “{name}” and its files?', run: 'Run', command: 'Command', commandHint: 'Arguments separated by spaces',
  output: 'Output', exitCode: 'Exit code {code}', logs: 'Logs', runIn: 'Run a command in “{name}”', memoryHint: 'e.g. 512M',
  cpuHint: 'Cores, e.g. 0.5 or 2', sandboxNameHint: 'Lowercase letters, digits and dashes, starting with a letter',
  badCpu: 'CPUs must be a number above 0', badTasks: 'Tasks must be a whole number above 0',
  badSize: '“{value}” is not a size (e.g. 512M, 2G)',
  // system
  overview: 'Overview', host: 'Host', os: 'Operating system', kernel: 'Kernel', uptime: 'Uptime', cpuCount: 'CPUs',
  failedUnits: 'Failed units', supervisor: 'Supervisor', taskTable: 'Internal tasks', task: 'Task', restarts: 'Restarts', lastError: 'Last error',
  since: 'Since', cpu: 'CPU', memoryUse: 'Memory', disk: 'Disk', load: 'Load', charts: 'Last hour',
  percent: '%', daemon: 'Daemon {version}, {state}', disks: 'Disks', mounted: 'Mounted at', total: 'Total', avail: 'Available',
  historyNote: 'History since this page was opened (this daemon keeps no metrics history).',
  certTitle: 'Web certificate', certFingerprint: 'SHA-256 fingerprint', certPath: 'Kept in',
  certHint: 'Compare this fingerprint with the one your browser shows for this page (lock icon → certificate) and with the one on the console or from “cacheosctl web cert”. If they differ, someone is between you and CacheOS.',
  certRedirect: 'Plain HTTP from the network', certRedirects: 'redirected to HTTPS', certNoRedirect: 'not redirected',
  certNone: 'The web port has no TLS certificate (TLS is off).',
  serviceFailed: 'The service {name} has failed – shall I take a look?', sandboxFailed: 'The sandbox {name} has failed – shall I take a look?',
  whyService: 'why did the service {name} fail?', whySandbox: 'why did the sandbox {name} fail?',
  lookNow: 'Yes, take a look', dismiss: 'Dismiss', notices: 'Notices',
  range: 'Period', range1h: 'Last hour', range24h: 'Last 24 hours', range30d: 'Last 30 days',
  // audit
  filters: 'Filters', period: 'Period', anyTime: 'any time', lastMinutes: 'last 15 minutes', lastHour: 'last hour',
  lastDay: 'last 24 hours', lastWeek: 'last 7 days', frontend: 'Front end', any: 'any', outcome: 'Outcome',
  apply: 'Apply', time: 'Time', principal: 'Principal', utterance: 'Utterance', details: 'Details', more: 'Load more',
  noRecords: 'No matching records.', operationHint: 'A name, or a prefix ending in “.”',
  // login
  loginTitle: 'Log in to CacheOS', token: 'Web token', tokenHint: 'Shown by “cacheosctl web token” on the appliance console.',
  loginButton: 'Log in', wrongToken: 'The token is wrong.', tooMany: 'Too many failed attempts. Try again in a minute.',
  loggedOut: 'You are logged out.', alreadyIn: 'You are signed in ({via}).', toChat: 'Go to the chat',
};

const de = {
  // logs and diagnosis (issue 16)
  logsPage: 'Journal', diagnosisOf: 'Diagnose von {name}', nothingWrong: 'Hier ist nichts kaputt.', evidence: 'Belege',
  fix: 'Abhilfe', fixByChat: 'Die Abhilfe ist die Operation {op}: frag den Chat, er zeigt sie als Plan und fragt vorher.',
  unit: 'Unit', priority: 'Priorität', containsText: 'Enthält', follow: 'Live folgen', prioErr: 'Fehler',
  prioWarning: 'Warnungen und schlimmer', prioInfo: 'Info und schlimmer', prioDebug: 'alles', services: 'Dienste',
  diagnose: 'Diagnose', showLogs: 'Einträge zeigen', description: 'Beschreibung', noServices: 'Keine Dienste.',
  journal: 'Journal', noEntries: 'Keine passenden Journal-Einträge.', serviceList: 'Liste der Dienste', journalEntries: 'Journal-Einträge',
  noSystemd: 'systemd läuft auf diesem Rechner nicht, daher gibt es keine Dienste.',
  skip: 'Zum Inhalt springen', navLabel: 'Hauptmenü', language: 'Sprache', theme: 'Darstellung',
  themeSystem: 'System', themeLight: 'Hell', themeDark: 'Dunkel', logout: 'Abmelden',
  chat: 'Chat', drives: 'Laufwerke', sandboxes: 'Sandboxen', system: 'System', audit: 'Protokoll', login: 'Anmelden',
  loading: 'Lädt…', error: 'Fehler', retry: 'Erneut versuchen', cancel: 'Abbrechen', confirm: 'Bestätigen', close: 'Schließen',
  refresh: 'Aktualisieren', none: 'Keine', yes: 'ja', no: 'nein', name: 'Name', state: 'Zustand', actions: 'Aktionen',
  notAvailable: 'Noch nicht verfügbar', notAvailableText: 'Dieser cacheosd bietet {what} noch nicht über REST an ({path}).',
  chatIntro: 'Frag auf Deutsch oder Englisch, zum Beispiel „zeig mir den Systemstatus“ oder „zeige das Protokoll der letzten Stunde“.',
  message: 'Nachricht', send: 'Senden', stopModel: 'Anhalten', you: 'Du', cacheos: 'CacheOS', newSession: 'Neues Gespräch',
  willDo: 'Was ich tun werde', operation: 'Operation', args: 'Argumente', risk: 'Risiko',
  confirmPlan: 'Plan ausführen', cancelPlan: 'Abbrechen', planConfirmed: 'Bestätigt', planCancelled: 'Abgebrochen',
  result: 'Ergebnis', conversation: 'Gespräch', thinking: 'Arbeite…', historyEmpty: 'Noch keine Nachrichten in diesem Gespräch.',
  yesWord: 'ja', noWord: 'nein', session: 'Sitzung',
  drivesList: 'Angeschlossene Laufwerke', noDrives: 'Keine Laufwerke angeschlossen.', image: 'Abbild', format: 'Format',
  size: 'Größe', mode: 'Modus', readWrite: 'lesen und schreiben', readOnly: 'nur lesen', persistent: 'Dauerhaft',
  partitions: 'Partitionen', mountPoint: 'Einhängepunkt', used: 'Belegt', free: 'Frei', snapshot: 'Schnappschuss',
  usedBy: 'Benutzt von', attach: 'Anschließen', attachTitle: 'Abbild anschließen', imagePath: 'Pfad des Abbilds',
  fromImages: 'Aus dem Abbild-Verzeichnis', choose: '– auswählen –', writable: 'Beschreibbar', mountIt: 'Dateisysteme einhängen',
  partscan: 'Partitionen suchen', detach: 'Trennen', detachConfirm: 'Laufwerk „{name}“ trennen? Seine Dateisysteme werden ausgehängt.',
  takeSnapshot: 'Schnappschuss', discard: 'Änderungen verwerfen', discardConfirm: 'Alle Änderungen an „{name}“ seit dem Schnappschuss verwerfen?',
  commit: 'Änderungen übernehmen', commitConfirm: 'Alle Änderungen seit dem Schnappschuss in das Abbild von „{name}“ schreiben?',
  persist: 'Nach Neustart behalten', unpersist: 'Nicht behalten', browse: 'Durchsuchen', files: 'Dateien von {name}',
  createTitle: 'Abbild erstellen', create: 'Erstellen', fs: 'Dateisystem', label: 'Bezeichnung',
  attachAfter: 'Nach dem Erstellen anschließen', sizeHint: 'z. B. 512M, 2G', kind: 'Art', emptyDir: 'Leeres Verzeichnis.',
  up: 'Nach oben', imagesDir: 'Abbild-Verzeichnis', noImages: 'Das Abbild-Verzeichnis ist leer.', modified: 'Geändert', done: 'Erledigt.',
  uploadTitle: 'Abbild hochladen', uploadFile: 'Abbild-Datei auf diesem Rechner', uploadName: 'Name im Abbild-Verzeichnis',
  uploadNameHint: 'Standard ist der Dateiname', upload: 'Hochladen', uploadProgress: 'Fortschritt des Hochladens',
  uploaded: '{name} hochgeladen ({size}).',
  sandboxesList: 'Sandboxen', noSandboxes: 'Keine Sandboxen.', resources: 'Ressourcen', drive: 'Laufwerk', template: 'Vorlage', cpus: 'CPUs', memory: 'Speicher',
  tasks: 'Prozesse', network: 'Netzwerk', netNone: 'keins', netNat: 'NAT', binds: 'Eingebundene Laufwerke',
  addBind: 'Laufwerk hinzufügen', removeBind: 'Entfernen', env: 'Umgebung', envHint: 'Eine Zeile SCHLÜSSEL=Wert pro Variable',
  ephemeral: 'Flüchtig (beim Stoppen entfernt)', createSandbox: 'Sandbox erstellen', start: 'Starten', stop: 'Stoppen',
  restart: 'Neu starten', remove: 'Entfernen', removeConfirm: 'Sandbox „{name}“ mit ihren Dateien entfernen?', run: 'Ausführen',
  command: 'Befehl', commandHint: 'Argumente durch Leerzeichen getrennt', output: 'Ausgabe', exitCode: 'Rückgabewert {code}',
  logs: 'Protokoll', runIn: 'Befehl in „{name}“ ausführen', memoryHint: 'z. B. 512M',
  cpuHint: 'Kerne, z. B. 0,5 oder 2', sandboxNameHint: 'Kleinbuchstaben, Ziffern und Bindestriche, beginnend mit einem Buchstaben',
  badCpu: 'CPUs muss eine Zahl über 0 sein', badTasks: 'Prozesse muss eine ganze Zahl über 0 sein',
  badSize: '„{value}“ ist keine Größe (z. B. 512M, 2G)',
  overview: 'Überblick', host: 'Rechner', os: 'Betriebssystem', kernel: 'Kernel', uptime: 'Laufzeit', cpuCount: 'CPUs',
  failedUnits: 'Fehlgeschlagene Units', supervisor: 'Supervisor', taskTable: 'Interne Aufgaben', task: 'Aufgabe', restarts: 'Neustarts',
  lastError: 'Letzter Fehler', since: 'Seit', cpu: 'CPU', memoryUse: 'Speicher', disk: 'Datenträger', load: 'Last',
  charts: 'Letzte Stunde', percent: '%', daemon: 'Dienst {version}, {state}', disks: 'Datenträger', mounted: 'Eingehängt in',
  total: 'Gesamt', avail: 'Verfügbar',
  historyNote: 'Verlauf seit dem Öffnen dieser Seite (dieser Dienst speichert keinen Messwertverlauf).',
  certTitle: 'Web-Zertifikat', certFingerprint: 'SHA-256-Fingerabdruck', certPath: 'Gespeichert in',
  certHint: 'Vergleiche diesen Fingerabdruck mit dem, den dein Browser für diese Seite zeigt (Schloss-Symbol → Zertifikat), und mit dem auf der Konsole oder von „cacheosctl web cert“. Weichen sie ab, sitzt jemand zwischen dir und CacheOS.',
  certRedirect: 'Einfaches HTTP aus dem Netz', certRedirects: 'wird auf HTTPS umgeleitet', certNoRedirect: 'wird nicht umgeleitet',
  certNone: 'Der Web-Port hat kein TLS-Zertifikat (TLS ist aus).',
  serviceFailed: 'Der Dienst {name} ist ausgefallen – soll ich nachsehen?', sandboxFailed: 'Die Sandbox {name} ist ausgefallen – soll ich nachsehen?',
  whyService: 'warum ist der Dienst {name} ausgefallen?', whySandbox: 'warum ist die Sandbox {name} ausgefallen?',
  lookNow: 'Ja, nachsehen', dismiss: 'Schließen', notices: 'Hinweise',
  range: 'Zeitraum', range1h: 'Letzte Stunde', range24h: 'Letzte 24 Stunden', range30d: 'Letzte 30 Tage',
  filters: 'Filter', period: 'Zeitraum', anyTime: 'beliebig', lastMinutes: 'letzte 15 Minuten', lastHour: 'letzte Stunde',
  lastDay: 'letzte 24 Stunden', lastWeek: 'letzte 7 Tage', frontend: 'Zugang', any: 'alle', outcome: 'Ergebnis',
  apply: 'Anwenden', time: 'Zeit', principal: 'Wer', utterance: 'Äußerung', details: 'Details', more: 'Mehr laden',
  noRecords: 'Keine passenden Einträge.', operationHint: 'Ein Name oder ein Präfix mit „.“ am Ende',
  loginTitle: 'Bei CacheOS anmelden', token: 'Web-Token', tokenHint: 'Zeigt „cacheosctl web token“ auf der Konsole des Geräts.',
  loginButton: 'Anmelden', wrongToken: 'Das Token ist falsch.', tooMany: 'Zu viele Fehlversuche. Versuch es in einer Minute erneut.',
  loggedOut: 'Du bist abgemeldet.', alreadyIn: 'Du bist angemeldet ({via}).', toChat: 'Zum Chat',
};

const dicts = { en, de };
const KEY = 'cacheos.lang';

function initial() {
  const saved = localStorage.getItem(KEY);
  if (saved && dicts[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = l.toLowerCase().slice(0, 2);
    if (dicts[base]) return base;
  }
  return 'en';
}

export let lang = initial();

export function setLang(l) {
  lang = dicts[l] ? l : 'en';
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
}

export function t(key, vars) {
  let s = dicts[lang][key] ?? en[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

export function fmtTime(ms) {
  return new Date(ms).toLocaleString(lang === 'de' ? 'de-DE' : 'en-GB');
}

export const languages = [['de', 'Deutsch'], ['en', 'English']];

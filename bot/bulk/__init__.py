"""Cards in bulk, for agents (代理商) with hundreds or thousands of terminals.

Import (``/import`` and ``python -m bot import``), export, a calendar (.ics) of expiries, search
and statistics. Pure domain code: the Telegram side is in ``handlers/bulk.py``,
``handlers/find.py`` and ``handlers/stats.py``; the SQL in ``storage/bulk.py``.

The import file format, decided once here:

* CSV (comma, tab, semicolon or ``|``; UTF-8 with or without BOM, UTF-16 with BOM, or
  GB18030/GBK as Excel in China saves it) or XLSX (the first sheet with an ICCID column;
  formulas are read by their cached value). The file type is recognised by content, not name.
* The header row is the first row (of the first 20) naming an ICCID column; rows above it (a
  title) are skipped. Columns are found by header, Chinese or English, in any order (see
  ``bot.bulk.columns``); unknown columns are ignored; of two columns for the same field, the
  leftmost wins. Blank rows are skipped. Row numbers are the spreadsheet's (header = its row).
* Every cell is validated as ``/addcard`` validates what a user types. An empty cell leaves the
  card's field as it is (for a new card: the default); a clear word (``-``, ``无``, ``clear``)
  empties it. A new card needs an expiry.
* The card has no terminal field: the label becomes ``label · terminal`` when a row has both,
  else whichever it has.
* Upsert by ICCID within the chat: added / updated / unchanged. An ICCID twice in the file with
  the same values is imported once (the later rows are reported as duplicates); with different
  values every one of those rows is rejected.
* A row that would move its card's expiry earlier is left and reported as older than SimWatch's
  (an old spreadsheet must not undo renewals); the user may apply such rows anyway.
* A wrong Luhn check digit does not reject the row (the numbers come from carriers' lists,
  not typing): the card is imported and the row is listed as a warning to double-check.
* The whole file is one transaction: all of it is applied, or (on a crash) none of it.
* What a file may expand to (rows and cells read, blank ones too; columns; an XLSX's
  inflated bytes and shared strings) is bounded while it streams in (``reading.Limits``);
  the bot reads uploads in a worker process with CPU and memory limits (``worker``).
* Files the bot writes never hold a live formula: text starting with ``= + - @``, a tab or a
  carriage return gets a leading quote in CSV (the importer takes it off) and is quote-
  prefixed text in XLSX (``writing``).
"""

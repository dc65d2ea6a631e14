using Microsoft.Data.Sqlite;
using Parley.Hub.Inbox;
using static Parley.Storage.Sqlite.SqlCommands;

namespace Parley.Storage.Sqlite.Inbox;

/// <summary>
/// Direct messages and per-recipient inboxes in their own SQLite file (<c>inbox.db</c> beside the
/// history). A send is one immediate transaction: the message and an item per recipient at that
/// recipient's next seq.
/// </summary>
public sealed class SqliteInboxStore : IInboxStore
{
    private const string SchemaSql = """
        CREATE TABLE IF NOT EXISTS dm_messages (
            id TEXT PRIMARY KEY, sender TEXT NOT NULL, target TEXT NOT NULL, body TEXT NOT NULL, priority TEXT NOT NULL, sent_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS dm_items (
            recipient TEXT NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL REFERENCES dm_messages(id), state TEXT NOT NULL,
            state_at INTEGER NOT NULL, PRIMARY KEY (recipient, seq)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS dm_items_message ON dm_items(message_id);
        """;

    // Added after the first release: an inbox.db made before it gets the column on open.
    private const string CorrelationColumnSql = "ALTER TABLE dm_messages ADD COLUMN correlation_id TEXT";

    private const string ItemSelect = """
        SELECT i.recipient, i.seq, m.id, m.sender, m.target, m.body, m.priority, m.sent_at, i.state, i.state_at, m.correlation_id
        FROM dm_items i JOIN dm_messages m ON m.id = i.message_id
        """;

    private readonly SerializedConnection _connection;

    private SqliteInboxStore(SerializedConnection connection) => _connection = connection;

    /// <summary>Opens (creating if needed) the inbox database at <paramref name="path"/>.</summary>
    /// <param name="synchronousFull">fsync every commit (the default: an acked DM survives power loss).</param>
    public static async Task<SqliteInboxStore> OpenAsync(string path, bool synchronousFull = true, CancellationToken cancellationToken = default)
    {
        return new SqliteInboxStore(await SerializedConnection.OpenAsync(path, synchronousFull, static c =>
        {
            Execute(c, SchemaSql);
            if (!Query(c, "SELECT name FROM pragma_table_info('dm_messages')", static r => r.GetString(0)).Contains("correlation_id"))
            {
                Execute(c, CorrelationColumnSql);
            }
        }));
    }

    public ValueTask<IReadOnlyList<InboxItem>> StoreAsync(DirectMessage message, IReadOnlyList<string> recipients, CancellationToken cancellationToken = default) =>
        _connection.RunAsync<IReadOnlyList<InboxItem>>(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            NonQuery(c, "INSERT INTO dm_messages (id, sender, target, body, priority, sent_at, correlation_id) VALUES ($id, $s, $t, $b, $p, $at, $c)",
                ("$id", message.Id), ("$s", message.From), ("$t", message.To), ("$b", message.Body), ("$p", message.Priority), ("$at", message.SentAtMs), ("$c", message.CorrelationId));
            var items = new List<InboxItem>(recipients.Count);
            foreach (var recipient in recipients)
            {
                var seq = (Scalar(c, "SELECT MAX(seq) FROM dm_items WHERE recipient = $r", ("$r", recipient)) is long last ? last : 0) + 1;
                NonQuery(c, "INSERT INTO dm_items (recipient, seq, message_id, state, state_at) VALUES ($r, $seq, $id, $st, $at)",
                    ("$r", recipient), ("$seq", seq), ("$id", message.Id), ("$st", DeliveryStates.Queued), ("$at", message.SentAtMs));
                items.Add(new InboxItem(recipient, seq, message, DeliveryStates.Queued, message.SentAtMs));
            }
            tx.Commit();
            return items;
        }, cancellationToken);

    public ValueTask<IReadOnlyList<InboxItem>> ReadAsync(string recipient, long afterSeq, IReadOnlyCollection<string> states, int limit, CancellationToken cancellationToken = default) =>
        _connection.RunAsync<IReadOnlyList<InboxItem>>(c => Query(c,
            $"{ItemSelect} WHERE i.recipient = $r AND i.seq > $after AND i.state IN ({string.Join(", ", states.Select((_, n) => "$s" + n))}) ORDER BY i.seq LIMIT $limit",
            ReadItem, [("$r", recipient), ("$after", afterSeq), ("$limit", limit), .. states.Select((s, n) => ("$s" + n, (object?)s))]), cancellationToken);

    public ValueTask<int> MarkAsync(string recipient, IReadOnlyCollection<long> seqs, string state, long nowMs, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var moved = 0;
            foreach (var seq in seqs)
            {
                moved += NonQuery(c, $"UPDATE dm_items SET state = $st, state_at = $at WHERE recipient = $r AND seq = $seq AND {Earlier("state", state)}",
                    ("$st", state), ("$at", nowMs), ("$r", recipient), ("$seq", seq));
            }
            tx.Commit();
            return moved;
        }, cancellationToken);

    public ValueTask<IReadOnlyList<InboxItem>> MarkReadAsync(string recipient, IReadOnlyCollection<string> messageIds, long nowMs, CancellationToken cancellationToken = default) =>
        _connection.RunAsync<IReadOnlyList<InboxItem>>(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var moved = new List<InboxItem>();
            foreach (var id in messageIds)
            {
                if (NonQuery(c, $"UPDATE dm_items SET state = $st, state_at = $at WHERE recipient = $r AND message_id = $id AND {Earlier("state", DeliveryStates.Read)}",
                    ("$st", DeliveryStates.Read), ("$at", nowMs), ("$r", recipient), ("$id", id)) > 0)
                {
                    moved.AddRange(Query(c, $"{ItemSelect} WHERE i.recipient = $r AND i.message_id = $id", ReadItem, ("$r", recipient), ("$id", id)));
                }
            }
            tx.Commit();
            return moved;
        }, cancellationToken);

    public ValueTask<(DirectMessage Message, IReadOnlyList<RecipientState> Recipients)?> StatusAsync(string messageId, CancellationToken cancellationToken = default) =>
        _connection.RunAsync<(DirectMessage, IReadOnlyList<RecipientState>)?>(c =>
        {
            var items = Query(c, $"{ItemSelect} WHERE i.message_id = $id ORDER BY i.recipient", ReadItem, ("$id", messageId));
            return items.Count == 0 ? null : (items[0].Message, items.Select(i => new RecipientState(i.Recipient, i.State, i.StateAtMs)).ToList());
        }, cancellationToken);

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    // States only move forward: queued → delivered → read.
    private static string Earlier(string column, string target) => target switch
    {
        DeliveryStates.Delivered => $"{column} = '{DeliveryStates.Queued}'",
        DeliveryStates.Read => $"{column} <> '{DeliveryStates.Read}'",
        _ => "0",
    };

    private static InboxItem ReadItem(SqliteDataReader r) =>
        new(r.GetString(0), r.GetInt64(1), new DirectMessage(r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetInt64(7), r.IsDBNull(10) ? null : r.GetString(10)),
            r.GetString(8), r.GetInt64(9));
}

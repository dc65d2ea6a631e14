using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Parley.Storage.Sqlite;

/// <summary>
/// A prepared statement run through SQLitePCL directly on a Microsoft.Data.Sqlite connection's handle,
/// for the statements executed once per message or per topic on every append. Through
/// Microsoft.Data.Sqlite each execution looks every parameter up by name, boxes integers and
/// allocates a UTF-8 copy of every string; here parameters are bound by position (<c>?1</c>, <c>?2</c>,
/// ...) and text is encoded into a reused buffer. Runs inside whatever transaction the connection has.
/// Not thread-safe; dispose before the connection closes.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private byte[] _utf8 = new byte[512];

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(raw.sqlite3_prepare_v3(_db, sql, raw.SQLITE_PREPARE_PERSISTENT, out _statement));
    }

    public void Bind(int index, long value) => Check(raw.sqlite3_bind_int64(_statement, index, value));

    /// <summary>Binds UTF-8 text (encoded as Microsoft.Data.Sqlite does), or NULL for null. SQLite copies
    /// the bytes, so the buffer is reused.</summary>
    public void Bind(int index, string? value)
    {
        if (value is null)
        {
            Check(raw.sqlite3_bind_null(_statement, index));
            return;
        }

        if (value.Length == 0)
        {
            // An empty span would be passed as a null pointer, which SQLite binds as NULL.
            Check(raw.sqlite3_bind_text(_statement, index, string.Empty));
            return;
        }

        var maxBytes = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (maxBytes > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(maxBytes, _utf8.Length * 2)];
        }

        var length = Encoding.UTF8.GetBytes(value, _utf8);
        Check(raw.sqlite3_bind_text(_statement, index, _utf8.AsSpan(0, length)));
    }

    /// <summary>Runs the statement (which must return no rows) and returns how many rows it changed.
    /// Errors throw <see cref="SqliteException"/>. Bindings stay until replaced.</summary>
    public int Execute()
    {
        try
        {
            var rc = raw.sqlite3_step(_statement);
            if (rc != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(rc == raw.SQLITE_ROW ? raw.SQLITE_MISUSE : rc, _db);
            }

            return raw.sqlite3_changes(_db);
        }
        finally
        {
            // A statement left running would make COMMIT fail.
            raw.sqlite3_reset(_statement);
        }
    }

    public void Dispose() => _statement.Dispose();

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}

using Parley.Hub.State;
using Parley.Storage.Sqlite.State;

namespace Parley.Storage.Tests.State;

public sealed class SqliteStateStoreTests : StateStoreSpec, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-state-tests", Guid.NewGuid().ToString("N"));

    private string DatabasePath => Path.Combine(_directory, "state.db");

    protected override async Task<IStateStore> CreateStoreAsync()
    {
        Directory.CreateDirectory(_directory);
        return await SqliteStateStore.OpenAsync(DatabasePath);
    }

    protected override async Task<IStateStore> ReopenStoreAsync() => await SqliteStateStore.OpenAsync(DatabasePath);

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}

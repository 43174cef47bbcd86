/* nosym - fixture: a shared object that is not a zq plugin (no zq_plugin_entry). */
int zq_not_a_plugin(void);
__attribute__((visibility("default"))) int zq_not_a_plugin(void)
{
    return 42;
}
